"""Usage events (inference, download) recorded in the transparency log in batches, off the request path.

A request hands its usage to `UsageRecorder.record`, which only queues it; a background thread writes what is
queued as one write transaction per batch (one log append for the whole batch, one checkpoint signed by the
registry's before-commit hook), when `batch_size` events are waiting or `interval_s` after the oldest arrived.
So a busy server appends a few batches a second and signs a checkpoint for each, and a request never waits for
the database. The queue is bounded: when the log cannot keep up, `record` blocks (back-pressure) and, past
`put_timeout_s`, refuses with a BackendError rather than grow without limit. `close` writes everything still
queued: a clean shutdown loses nothing.

The input of an inference is recorded as its digest, `sha256:` + SHA-256 of the RFC 8785 canonical JSON of the
rows as the caller sent them (a list of rows, each a list of values), computed on the background thread.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiprov.core.canonical import canonical_json
from aiprov.core.events import Event
from aiprov.core.names import Ref
from aiprov.errors import AiprovError, BackendError, InvalidInput
from aiprov.records import EventRecord

if TYPE_CHECKING:
    from aiprov.adapters.db.registry import SqlRegistry
    from aiprov.config import Container

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is optional: the input digest then always takes the slow path
    _orjson = None  # type: ignore[assignment]

log = logging.getLogger("aiprov.usage")

SAFE_INT = 2**53
"""RFC 8785 carries integers of magnitude below this exactly; beyond it JSON numbers lose precision."""

INFERENCE = "inference"
DOWNLOAD = "download"
USAGE_ACTIONS = (INFERENCE, DOWNLOAD)
"""The actions that count as usage of a model."""


_POINT_ZERO = re.compile(rb"\.0(?=[,\]])")


def input_digest(rows: Any, array: Any = None) -> str:
    """`sha256:<hex>` of the RFC 8785 canonical JSON of `rows`. Raises InvalidInput if JSON cannot carry them.

    `array`, the same rows as a numeric numpy array, allows a fast path: where every number is 0 or has a
    magnitude in [1e-4, 2**53) and there is no -0, orjson's shortest round-trip numbers are RFC 8785's once an
    integral float's `.0` is dropped (about 40x faster than the pure-Python encoder for 1,000 rows). The upper
    bound is 2**53, not the 1e16 where the two formats part: an integer beyond 2**53 in a float array is
    refused by RFC 8785, so the reference encoder must see it.
    """
    encoded = _fast_canonical(rows, array)
    return "sha256:" + hashlib.sha256(encoded if encoded is not None else canonical_json(rows)).hexdigest()


SMALL_INPUT = 64
"""Inputs of at most this many values are checked value by value in Python: below it, numpy's fixed cost per call
(a few microseconds for each of the checks) is the larger."""


def _fast_canonical(rows: Any, array: Any) -> bytes | None:
    if array is None or _orjson is None or getattr(array, "dtype", None) is None or array.dtype.kind not in "biuf":
        return None
    import numpy as np

    if array.size <= SMALL_INPUT:
        for row in rows:
            for v in row:
                if not _orjson_exact(v):
                    return None
    elif array.dtype.kind == "f":
        a = np.abs(array)
        if not (((a >= 1e-4) & (a < SAFE_INT)) | ((a == 0) & ~np.signbit(array))).all():
            return None
    elif array.dtype.kind in "iu" and array.size and int(np.abs(array).max()) >= SAFE_INT:
        return None
    return _POINT_ZERO.sub(b"", _orjson.dumps(rows))


def _orjson_exact(v: Any) -> bool:
    """Whether orjson writes `v` (a value of a numeric row) as RFC 8785 does, once `.0` is dropped (see above)."""
    kind = type(v)
    if kind is float:
        return 1e-4 <= abs(v) < SAFE_INT or (v == 0 and math.copysign(1.0, v) > 0)
    if kind is int:
        return bool(-SAFE_INT < v < SAFE_INT)
    return kind is bool


@dataclass(frozen=True, slots=True)
class Usage:
    """One use of a model version, as queued: who used which digest when, and how.

    `rows`, when given (an inference's input), is hashed into `details["input_digest"]` on the recorder's thread;
    the caller must not change it afterwards. `array` is the same rows as a numpy array, if the caller made one.
    """

    actor: str
    action: str
    digest: str
    model: str | None
    time: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    rows: Sequence[Any] | None = None
    array: Any = None

    def event(self) -> Event:
        """The log event. Raises InvalidInput if `rows` cannot be encoded as canonical JSON."""
        details = dict(self.details)
        if self.rows is not None:
            details["input_digest"] = input_digest(self.rows, self.array)
            details["rows"] = len(self.rows)
        return Event(
            time=self.time, actor=self.actor, action=self.action, subject=self.digest, model=self.model, details=details
        )


class UsageRecorder:
    """A bounded queue of usage events and the thread that appends them to the log in batches.

    Thread-safe. `record` is all a request pays: an append to a deque under a lock.
    """

    def __init__(
        self,
        db: SqlRegistry,
        *,
        batch_size: int = 512,
        interval_s: float = 0.2,
        max_queued: int = 20_000,
        put_timeout_s: float = 10.0,
    ) -> None:
        if batch_size < 1 or max_queued < batch_size or interval_s <= 0:
            raise InvalidInput("a usage recorder needs 1 <= batch_size <= max_queued and interval_s > 0")
        self.db = db
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_queued = max_queued
        self.put_timeout_s = put_timeout_s
        self._queue: deque[Usage] = deque()
        self._oldest = 0.0  # monotonic time the oldest queued event arrived
        self._cond = threading.Condition()
        self._queued = 0  # events accepted so far
        self._done = 0  # events written (or given up on) so far
        self._flushing = 0  # callers waiting in flush(): write now, don't wait for the interval
        self._closed = False
        self.batches = 0
        """Batches written (for tests and monitoring)."""
        self.dropped = 0
        """Events given up on: ones the log refused (logged as errors), or left when the database stayed down."""
        self._thread = threading.Thread(target=self._run, name="aiprov-usage", daemon=True)
        self._thread.start()

    def record(self, usage: Usage) -> None:
        """Queue `usage` for the log; returns at once unless the queue is full.

        Raises BackendError when the queue stays full for `put_timeout_s` (the log cannot keep up) or the
        recorder is closed.
        """
        with self._cond:
            if len(self._queue) >= self.max_queued:
                deadline = time.monotonic() + self.put_timeout_s
                while len(self._queue) >= self.max_queued and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise BackendError(
                            "the usage log is not keeping up; the request was refused so its use is not lost",
                            hint="try again shortly",
                        )
                    self._cond.wait(left)
            self._append(usage)

    def _append(self, usage: Usage) -> None:
        """Under `_cond`, with room in the queue. Raises BackendError if the recorder is closed."""
        if self._closed:
            raise BackendError("the usage recorder is closed (the server is shutting down)")
        if not self._queue:
            self._oldest = time.monotonic()
            self._cond.notify_all()  # the writer starts this batch's clock
        self._queue.append(usage)
        self._queued += 1
        if len(self._queue) == self.batch_size:
            self._cond.notify_all()

    def try_record(self, usage: Usage) -> bool:
        """Queue `usage` if there is room now; False (nothing queued) if the queue is full. Never blocks.

        Raises BackendError if the recorder is closed.
        """
        with self._cond:
            if len(self._queue) >= self.max_queued:
                return False
            self._append(usage)
            return True

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued before this call now; return False if `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._done < target and self._thread.is_alive():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                return self._done >= target
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread; further `record`s are refused. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("usage recorder: %d events still queued after %g s at shutdown", len(self._queue), timeout)

    @property
    def pending(self) -> int:
        """Events queued and not yet written."""
        with self._cond:
            return self._queued - self._done

    # the writer thread ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while (batch := self._take()) is not None:
            written = self._write(batch)
            with self._cond:
                if written:
                    failures = 0
                    for _ in batch:
                        self._queue.popleft()
                    self._done += len(batch)
                    self._oldest = time.monotonic()
                    self._cond.notify_all()
                    continue
                failures += 1
                if self._closed and failures >= 3:
                    log.error("usage recorder: the database is down at shutdown; %d events lost", len(self._queue))
                    self.dropped += len(self._queue)
                    self._done += len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
                    continue
                self._cond.wait(min(0.1 * 2**failures, 5.0))  # close() wakes it early

    def _take(self) -> list[Usage] | None:
        """The next batch (left in the queue until written); None once closed and empty."""
        with self._cond:
            while True:
                if not self._queue:
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                now = time.monotonic()
                due = self._oldest + self.interval_s
                if self._closed or self._flushing or len(self._queue) >= self.batch_size or now >= due:
                    return list(itertools.islice(self._queue, self.batch_size))
                self._cond.wait(due - now)

    def _write(self, batch: list[Usage]) -> bool:
        """Append `batch` in one write unit; True when it is done with (written, or refused and logged)."""
        events: list[Event] = []
        for usage in batch:
            try:
                events.append(usage.event())
            except InvalidInput as e:
                self.dropped += 1
                log.error("usage recorder: dropping a %s event of %s: %s", usage.action, usage.digest, e.message)
        if not events:
            return True
        try:
            with self.db.unit(write=True) as u:
                u.add_events(events)
        except BackendError as e:
            log.warning("usage recorder: writing %d events failed, will retry: %s", len(events), e.message)
            return False
        except AiprovError as e:  # the log refused the batch: not a passing failure, so retrying cannot help
            self.dropped += len(events)
            log.error("usage recorder: the log refused %d events: %s", len(events), e.diagnostics())
            return True
        self.batches += 1
        return True


def make_recorder(container: Container, **options: Any) -> UsageRecorder:
    """A recorder writing to the container's registry, whose before-commit hook signs a checkpoint per batch.

    Batch size and interval come from the settings (`usage_batch_size`, `usage_interval_s`) unless `options`
    give them. Raises NotFound (no home) or SchemaError as building the registry does.
    """
    container.registry  # noqa: B018 - checks the home and schema, and hooks checkpoint signing
    s = container.settings
    options.setdefault("batch_size", s.usage_batch_size)
    options.setdefault("interval_s", s.usage_interval_s)
    options.setdefault("max_queued", max(20_000, 4 * options["batch_size"]))
    return UsageRecorder(container.db, **options)


class UsageQueries:
    """Reading usage back from the events table: per model, version or user, newest first."""

    def __init__(self, db: SqlRegistry) -> None:
        self.db = db

    def of_model(self, ref: str, *, actions: Sequence[str] = USAGE_ACTIONS, limit: int = 100) -> list[EventRecord]:
        """Usage of the model `owner/name` (every version) or of one version (`@N`, `@alias`, digest).

        Raises InvalidInput for a malformed reference, NotFound for an unknown model or version.
        """
        parsed = Ref.parse(ref)
        with self.db.unit() as u:
            if parsed.model is not None and parsed.number is None and parsed.alias is None:
                u.require_model(parsed.model)
                return u.events(model=str(parsed.model), actions=actions, limit=limit)
            _, version = u.resolve(parsed)
            return u.events(subject=version.digest, actions=actions, limit=limit)

    def of_user(self, user: str, *, actions: Sequence[str] = USAGE_ACTIONS, limit: int = 100) -> list[EventRecord]:
        """Usage by `user` (an account name, or "anonymous"), any model."""
        with self.db.unit() as u:
            return u.events(actor=user, actions=actions, limit=limit)
