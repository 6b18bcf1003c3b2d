"""A test-only model format whose file says how to misbehave, on load or on predict.

The file is JSON: {"load": ACTION, "predict": ACTION}, ACTION one of ok, raise, slow, hang, spin, alloc, segv, exit
(and, on predict only, env: answer the worker's environment variable names).
Tests register `load` as the loader of format "misbehaving" (workers import it by path), so the pool's
handling of each failure is exercised by a real worker process doing the real thing.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
from pathlib import Path
from typing import Any

from aiprov.sandbox.spec import ModelSpec

LOADER = "tests.sandbox.misbehaving:load"
loads = 0
"""How many models this worker process loaded (a warm model is not loaded again)."""


def act(action: str) -> None:
    if action == "raise":
        raise RuntimeError("this model is broken on purpose")
    if action == "slow":
        time.sleep(0.5)
    if action == "hang":
        time.sleep(3600)
    if action == "spin":
        while True:
            pass
    if action == "alloc":
        hog = bytearray(64 * 1024**3)  # far past any worker's address-space limit
        hog[-1] = 1
    if action == "segv":
        ctypes.string_at(0)
    if action == "exit":
        os._exit(3)


class Model:
    def __init__(self, on_predict: str) -> None:
        self.on_predict = on_predict

    def predict(self, x: Any) -> list[list[Any]]:
        """Each row answers (worker pid, models loaded so far); with "env", the names in the worker's environment."""
        if self.on_predict == "env":
            return [sorted(os.environ)] * len(x)
        act(self.on_predict)
        return [[os.getpid(), loads]] * len(x)


def load(spec: ModelSpec) -> Model:
    global loads
    plan = json.loads((Path(spec.root) / spec.entry).read_text())
    act(plan.get("load", "ok"))
    loads += 1
    return Model(plan.get("predict", "ok"))
