"""Turning files into objects for dl-serve: configuration, validation, object creation, plugin discovery."""
