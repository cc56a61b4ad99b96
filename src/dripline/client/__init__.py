"""Asking the mesh: the request/reply session, AsyncInterface and its blocking face Interface."""
