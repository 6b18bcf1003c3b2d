"""The HTTP API (FastAPI): `create_app(container)` builds it over the same services as the CLI.

Importing this package imports FastAPI; only `aiprov serve` and tests do.
"""

from aiprov.api.app import create_app

__all__ = ["create_app"]
