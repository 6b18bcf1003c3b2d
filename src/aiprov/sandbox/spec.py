"""What a worker is asked to load: plain, picklable values (no registry objects cross the process boundary)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model materialised on local disk, verified and scanned, ready for a worker to load.

    `key` identifies the bytes (the manifest digest): workers cache loaded models under it. `entry` is the path,
    relative to `root`, of the file to load with the loader registered for `format`. `trusted` lists the skops
    types the loader may construct (checked against our allow-list before the spec was made).
    """

    key: str
    root: str
    entry: str
    format: str
    trusted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one worker process.

    `memory_bytes` caps its address space (RLIMIT_AS), `cpu_seconds` the CPU time of each request
    (RLIMIT_CPU, re-armed per request), `timeout_s` the wall-clock time the parent waits for an answer.
    """

    memory_bytes: int = 2 * 1024**3
    cpu_seconds: int = 120
    timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class Prediction:
    """A model's answer as plain lists: labels or values, and class probabilities when asked and available."""

    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None
