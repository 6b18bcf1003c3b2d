"""The worker process: confines and limits itself, then loads and runs models on request, keeping recent ones warm.

Started by `WorkerPool` as a fresh interpreter (`python -I`, see `BOOTSTRAP`) with an environment the pool wrote
from scratch, so it holds nothing of its parent (no variables, no database connections, no open files but its
socket). Messages are pickled tuples on a `multiprocessing.connection.Connection`:

    parent: sys.path (a list of str), then a `WorkerStart`
    worker: a `StartReport` as JSON (which protections hold); in strict mode with one missing, it then exits
    ("run", spec, rows, proba)  ->  ("ok", {"predictions": [...], "probabilities": [[...]] | None,
                                            "classes": [...] | None}, warm_keys)
    ("load", spec)              ->  ("ok", None, warm_keys)
    (op, key, ...)              ->  as with the spec, for a model this worker has loaded (its key is in warm_keys)
    ("stop",)                   ->  the worker exits
    any failure                 ->  ("error", stage, message, warm_keys)   stage: "load" | "run" | "memory"

A MemoryError is answered and then the worker exits: its heap may be in any state, so the parent replaces it.
What the worker sends must be plain data (lists, dicts, str, numbers, None): the parent refuses any pickle that
names a class or function, since a model running code could write anything on the socket.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

from aiprov.sandbox.isolation import RESOURCE_LIMITS, Confinement, Protection, StartReport, confine
from aiprov.sandbox.spec import Limits, ModelSpec

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Set to 1 in every worker: predictable memory, and the pool gives the parallelism."""

BOOTSTRAP = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "conn = Connection(int(sys.argv[1]))\n"
    "sys.path[:] = conn.recv()\n"
    "from aiprov.sandbox.worker import main\n"
    "main(conn)\n"
)
"""What `python -I -c` runs: isolated mode ignores PYTHON* variables and the user's site-packages, so the path
the worker imports from (the caller's, editable installs and test loaders included) comes over the socket."""


@dataclass(frozen=True, slots=True)
class WorkerStart:
    """What a worker needs to start: its limits, loaders, warm-model capacity and confinement."""

    limits: Limits
    loaders: dict[str, str]
    capacity: int
    confinement: Confinement


def _limit(limits: Limits) -> Protection:
    """Cap address space and core dumps; CPU time is armed per request by `_arm_cpu`."""
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return Protection(
        RESOURCE_LIMITS,
        True,
        f"address space {limits.memory_bytes // 2**20} MiB, CPU {limits.cpu_seconds} s per request, "
        f"wall clock {limits.timeout_s:g} s per request, no core dumps",
    )


def _arm_cpu(seconds: int) -> None:
    """Allow `seconds` more CPU time from now; past it the kernel sends SIGXCPU, which ends the worker."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


class _Models:
    """Loaded models by key, least recently used evicted first."""

    def __init__(self, loaders: dict[str, str], capacity: int) -> None:
        self.loaders = loaders
        self.capacity = capacity
        self.loaded: OrderedDict[str, Any] = OrderedDict()

    def get(self, spec: ModelSpec | str) -> Any:
        """The model of `spec`, loaded now if it is not yet; a key alone names a model already loaded."""
        from aiprov.sandbox.loaders import resolve

        key = spec if isinstance(spec, str) else spec.key
        if key in self.loaded:
            self.loaded.move_to_end(key)
            return self.loaded[key]
        if isinstance(spec, str):
            raise LookupError(f"model {key} is not loaded in this worker")
        path = self.loaders.get(spec.format)
        if path is None:
            raise LookupError(f"no loader for format {spec.format!r}")
        model = resolve(path)(spec)
        self.loaded[spec.key] = model
        while len(self.loaded) > self.capacity:
            self.loaded.popitem(last=False)
        return model

    def keys(self) -> list[str]:
        return list(self.loaded)


def _plain(value: Any) -> Any:
    """Numpy arrays and scalars as lists and Python scalars, so the answer unpickles without numpy types."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def _run(model: Any, rows: Any, proba: bool) -> dict[str, Any]:
    import numpy as np

    x = np.asarray(rows)
    with _finite_checked(x):
        answer: dict[str, Any] = {"predictions": _plain(model.predict(x)), "probabilities": None, "classes": None}
        has_proba = getattr(model, "has_proba", None)
        if proba and hasattr(model, "predict_proba") and (has_proba is None or has_proba()):
            answer["probabilities"] = _plain(model.predict_proba(x))
            classes = getattr(model, "classes_", None)
            answer["classes"] = None if classes is None else _plain(classes)
    return answer


def _finite_checked(x: Any) -> contextlib.AbstractContextManager[Any]:
    """For a float array with no NaN or infinity, scikit-learn's own check of that, switched off.

    Its check costs about 27 us per call on a small input against 2 us for one numpy call here, and it would pass:
    the answer is the same. Anything else (another dtype, a NaN, no scikit-learn loaded) is left to the model.
    """
    import numpy as np

    sklearn = sys.modules.get("sklearn")
    if sklearn is not None and x.dtype.kind == "f" and bool(np.isfinite(x).all()):
        return cast(contextlib.AbstractContextManager[Any], sklearn.config_context(assume_finite=True))
    return contextlib.nullcontext()


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}"[:500] if text else type(e).__name__


def main(conn: Connection) -> None:
    """Start as `conn` says, report the protections, then serve requests until told to stop or the parent goes."""
    start: WorkerStart = conn.recv()
    limits = start.limits
    plan = start.confinement
    protections = [*confine(plan), _limit(limits)]
    report = StartReport(os.getpid(), plan.mode, tuple(protections))
    conn.send(report.to_json())
    if plan.mode == "strict" and not report.complete:
        return  # the pool refuses, and so does the worker: not one model is loaded unconfined
    models = _Models(start.loaders, start.capacity)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        op = request[0]
        if op == "stop":
            return
        spec: ModelSpec | str = request[1]
        _arm_cpu(limits.cpu_seconds)
        stage = "load"
        try:
            model = models.get(spec)
            stage = "run"
            result = _run(model, request[2], request[3]) if op == "run" else None
        except MemoryError as e:
            conn.send(("error", "memory", f"{stage}: {_describe(e)}", models.keys()))
            return
        except Exception as e:
            conn.send(("error", stage, _describe(e), models.keys()))
            continue
        conn.send(("ok", result, models.keys()))
