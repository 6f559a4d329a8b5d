"""The gateway's routes, one module per part of the public API; ``app.py`` puts them together."""
