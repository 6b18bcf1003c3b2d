"""aiprov: a model hub with provenance you can verify.

Importing this package must stay cheap: heavy libraries are imported by the adapter or command that needs them,
and `aiprov.Hub` is imported on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiprov.hub import Hub

__version__ = "0.1.0"

__all__ = ["Hub", "__version__"]


def __getattr__(name: str) -> object:
    if name == "Hub":
        from aiprov.hub import Hub

        return Hub
    raise AttributeError(f"module 'aiprov' has no attribute {name!r}")
