"""The local web dashboard over the run store (the ``dashboard`` extra: Starlette, Jinja2, uvicorn)."""
