"""Serving backends: ``uvicorn`` (the ASGI app in-process) and ``ray_serve`` (a Ray Serve deployment)."""
