"""Concierge's version: the one place it is written. pyproject.toml reads it from here; /healthz,
the admin footer, the API schema and `manage.py version` show it. Bump it with a CHANGELOG.md
entry when releasing (a tag vX.Y.Z builds and publishes the image)."""

__version__ = "0.2.0"
