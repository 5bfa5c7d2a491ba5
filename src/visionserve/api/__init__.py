"""The HTTP API: FastAPI app, routes and wire codecs. Only this package imports FastAPI."""
