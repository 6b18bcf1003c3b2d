"""The remote CLI: `aiprov --server URL --token T <command>` runs the same commands against an aiprov server.

`RemoteContainer` offers the services the CLI commands call (registry, log, verification, evaluations of a
version) over HTTP (httpx, imported only when a server is used), so the commands need no change.
"""

from aiprov.remote.container import RemoteContainer

__all__ = ["RemoteContainer"]
