"""A test-only model format whose file says what to try from inside the worker, as hostile code would.

The file is JSON: {"on": "load" | "predict", "try": ATTEMPT, ...}, ATTEMPT one of
- connect: a TCP connection to 127.0.0.1:`port`;
- unix: a connection to the path-named Unix socket `path`;
- read: the first bytes of the file `path` (relative: in the model's directory);
- environ: this process's initial environment, as /proc/self/environ holds it;
- forge: write on the worker's socket, ahead of its real answer, a pickle that would create the file `marker`
  if the pool unpickled it as pickle.loads does.
On predict, each row answers "ok: ..." or "refused: ErrorName ..." for the attempt. Tests register `load` as the
loader of format "escape": this is how a model that slipped past the scanner would run, and the scanner is not
involved (nor weakened).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import stat
import struct
from pathlib import Path
from typing import Any

from aiprov.sandbox.spec import ModelSpec

LOADER = "tests.sandbox.escape:load"


def attempt(plan: dict[str, Any]) -> str:
    try:
        if plan["try"] == "connect":
            with socket.create_connection(("127.0.0.1", plan["port"]), timeout=2.0):
                return "ok: connected"
        if plan["try"] == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2.0)
                s.connect(plan["path"])
                return "ok: connected"
        if plan["try"] == "read":  # a relative path is the model's own file
            with open(Path(plan["root"]) / plan["path"], "rb") as f:
                return f"ok: {f.read(64)!r}"
        if plan["try"] == "environ":
            with open("/proc/self/environ", "rb") as f:
                return "ok: " + f.read().decode(errors="replace")
        if plan["try"] == "forge":
            return forge(plan["marker"])
    except OSError as e:
        return f"refused: {type(e).__name__} {e}"
    raise ValueError(f"unknown attempt {plan['try']!r}")


class _CreatesFile:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def forge(marker: str) -> str:
    """Find the socket to the pool among this process's descriptors and write a message on it."""
    payload = pickle.dumps(("ok", _CreatesFile(marker), []))
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, struct.pack("!i", len(payload)) + payload)
                return "ok: forged"
    return "refused: no socket found"


class Model:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan

    def predict(self, x: Any) -> list[str]:
        return [attempt(self.plan)] * len(x)


def load(spec: ModelSpec) -> Model:
    plan = {**json.loads((Path(spec.root) / spec.entry).read_text()), "root": spec.root}
    if plan.get("on") == "load":
        attempt(plan)
    return Model(plan)
