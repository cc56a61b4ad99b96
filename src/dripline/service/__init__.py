"""Answering the mesh: Service, endpoints, request dispatch, entities, calibration, scheduling."""
