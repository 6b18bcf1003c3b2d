"""Usage events (inference, download) recorded in the transparency log in batches: group commit.

A request hands its usage to `UsageRecorder.record` (or `record_async` on an event loop), which queues it and
returns only once the batch holding it is committed: what a request acknowledges is in the log. Whatever is
queued is written as one write transaction per batch (one log append for the whole batch) as soon as the
previous batch is committed, at most `batch_size` events at a time: by a background thread, or, for
`record_async` on SQLite (`inline`), by the event loop itself (`_LoopQueue`), since there a commit is local work
that costs less than the hand-over to a thread. So a lone request waits for one commit
of its own event, and under load the requests that arrive during one commit share the next: many requests per
commit, and a request's latency grows by at most two commits (the one in progress when it arrived, then its own).

A prediction announces its event before the model runs (`expect`), and the writer, finding fewer events queued
than are announced, waits for them up to `linger_s` (2 ms) instead of committing a batch of one: with 16
clients, a fifth of the batches had held a single event (the first answer of a wave of predictions from one
worker call), each paying a whole commit. A lone caller announces nothing that the writer would wait for: its
event is queued when it is the only one announced, so it never waits.

A batch signs a checkpoint (the registry's before-commit hook) only when the last one the recorder signed is
`checkpoint_interval_s` old, and an idle recorder signs one for what is left unsigned once that interval has
passed. Signing and storing a checkpoint was a third of a batch's cost; a checkpoint at most a second behind
the log loses nothing, since whoever asks for the newest checkpoint gets one signed over the whole tree then.

"Committed" is the database's commit: on SQLite (WAL, `synchronous=NORMAL`) the transaction is in the WAL file
when the commit returns, so it survives the server process being killed (kill -9); an operating-system crash or
a power loss may lose the last transactions, which `synchronous=FULL` would also keep at the price of an fsync per
commit. On PostgreSQL a commit is durable (`synchronous_commit=on`, the default).

The queue is bounded: when the log cannot keep up, `record` blocks (back-pressure) and, past `put_timeout_s`,
refuses with a BackendError rather than grow without limit; a request whose batch is not committed within
`commit_timeout_s` (the database is down) is refused with a BackendError too (its event may still be written
later: the log may hold a use that was not answered, never an answer that is not in the log). `close` writes
everything still queued.

The input of an inference is recorded as its digest, `sha256:` + SHA-256 of the RFC 8785 canonical JSON of the
rows as the caller sent them (a list of rows, each a list of values), computed on the background thread; rows that
canonical JSON cannot carry fail their request with InvalidInput, and only it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
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
    from aiprov.ports import EventAppender, EventStore

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


_Waiter = concurrent.futures.Future[None] | tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]
"""Who waits for an event's commit: a thread (a concurrent future) or a coroutine (its loop and an asyncio future)."""


class UsageRecorder:
    """A bounded queue of usage events, and the thread that commits them to the log in batches (group commit).

    Thread-safe. `record` and `record_async` return once their event is committed (see the module's docstring).
    """

    def __init__(
        self,
        db: EventStore,
        *,
        batch_size: int = 512,
        max_queued: int = 20_000,
        put_timeout_s: float = 10.0,
        commit_timeout_s: float = 30.0,
        checkpoint_interval_s: float = 1.0,
        inline: bool | None = None,
    ) -> None:
        if batch_size < 1 or max_queued < batch_size or commit_timeout_s <= 0:
            raise InvalidInput("a usage recorder needs 1 <= batch_size <= max_queued and commit_timeout_s > 0")
        if checkpoint_interval_s < 0:
            raise InvalidInput("a usage recorder needs checkpoint_interval_s >= 0")
        self.db = db
        self.batch_size = batch_size
        self.max_queued = max_queued
        self.put_timeout_s = put_timeout_s
        self.commit_timeout_s = commit_timeout_s
        self.checkpoint_interval_s = checkpoint_interval_s
        self._signed_at = -math.inf  # when this recorder last signed a checkpoint (monotonic clock)
        self._unsigned = False  # events committed since then
        self._queue: deque[tuple[Usage, _Waiter]] = deque()
        self._cond = threading.Condition()
        self._queued = 0  # events accepted so far
        self._done = 0  # events written (or given up on) so far
        self._closed = False
        self._expected = 0  # events announced by `expect` and not yet queued or withdrawn
        self._lingering = False  # the writer is waiting for announced events
        self.linger_s = 0.002
        """How long the writer waits for announced events before committing the ones queued."""
        self._events = db.event_writer()
        self.inline = db.dialect == "sqlite" if inline is None else inline
        """Whether `record_async` writes on its event loop (see the module's docstring; default: on SQLite)."""
        self._loops: dict[asyncio.AbstractEventLoop, _LoopQueue] = {}
        self.batches = 0
        """Batches written (for tests and monitoring)."""
        self.dropped = 0
        """Events not written: ones the log refused (their requests failed), or left when the database stayed down."""
        self._thread = threading.Thread(target=self._run, name="aiprov-usage", daemon=True)
        self._thread.start()

    def record(self, usage: Usage) -> None:
        """Log `usage`: return once it is committed.

        Raises InvalidInput if the event cannot be encoded (rows canonical JSON cannot carry), BackendError when
        the queue stays full for `put_timeout_s`, the commit does not come within `commit_timeout_s`, or the
        recorder is closed; AiprovError if the log refuses the batch.
        """
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._put(usage, done)
        try:
            done.result(self.commit_timeout_s)
        except concurrent.futures.TimeoutError:
            raise _not_committed(self.commit_timeout_s) from None

    def expect(self) -> None:
        """Announce an event that `record_async(..., expected=True)` will queue soon, or `unexpect` withdraw.

        Called on the event loop that will record it.
        """
        if self.inline:
            self._loop_queue(asyncio.get_running_loop()).expected += 1
            return
        with self._cond:
            self._expected += 1

    def unexpect(self) -> None:
        """Withdraw an event announced by `expect` (its request failed before it had anything to record)."""
        if self.inline:
            self._loop_queue(asyncio.get_running_loop()).settle_expected()
            return
        with self._cond:
            self._settle_expected()

    def _loop_queue(self, loop: asyncio.AbstractEventLoop) -> _LoopQueue:
        queue = self._loops.get(loop)
        if queue is None:
            with self._cond:
                for gone in [other for other in self._loops if other.is_closed()]:
                    self._loops.pop(gone).close()
                queue = self._loops[loop] = _LoopQueue(self, loop)
        return queue

    def _settle_expected(self) -> None:
        """Under `_cond`: one announced event is queued or withdrawn; wake a writer waiting for the last one."""
        self._expected -= 1
        if self._lingering and self._expected <= 0:
            self._cond.notify_all()

    async def record_async(self, usage: Usage, *, expected: bool = False) -> None:
        """`record` for an event loop: the loop is not blocked while the batch commits. Raises as `record`.

        `expected`: the event was announced with `expect` (it is then no longer announced, whatever happens).
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if self.inline:
            await self._loop_queue(loop).put(usage, done, expected=expected)
        else:
            with self._cond:
                if expected:
                    self._settle_expected()
                room = len(self._queue) < self.max_queued
                if room:
                    self._append(usage, (loop, done))
            if not room:  # back-pressure: wait for room off the loop
                await asyncio.to_thread(self._put, usage, (loop, done))
        try:
            async with asyncio.timeout(self.commit_timeout_s):
                await done
        except TimeoutError:
            raise _not_committed(self.commit_timeout_s) from None

    def _put(self, usage: Usage, waiter: _Waiter) -> None:
        with self._cond:
            if len(self._queue) >= self.max_queued:
                deadline = time.monotonic() + self.put_timeout_s
                while len(self._queue) >= self.max_queued and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise _not_keeping_up()
                    self._cond.wait(left)
            self._append(usage, waiter)

    def _append(self, usage: Usage, waiter: _Waiter) -> None:
        """Under `_cond`, with room in the queue. Raises BackendError if the recorder is closed."""
        if self._closed:
            raise _closed()
        if not self._queue or (self._lingering and len(self._queue) + 1 >= self.batch_size):
            self._cond.notify_all()  # the writer is idle (this event starts the next batch), or its batch is full
        self._queue.append((usage, waiter))
        self._queued += 1

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is written; return False if `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            while self._done < target and self._thread.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return self._done >= target

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread; further `record`s are refused. Idempotent.

        What event loops queued is written here, on the calling thread, and their requests are answered on their
        loops.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            loops = list(self._loops.values())
            self._loops.clear()
        for queue in loops:
            queue.drain()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("usage recorder: %d events still queued after %g s at shutdown", len(self._queue), timeout)

    @property
    def pending(self) -> int:
        """Events queued and not yet written."""
        with self._cond:
            return self._queued - self._done + sum(len(q.items) for q in self._loops.values())

    # the writer thread ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while (batch := self._take()) is not None:
            if not batch:
                self._sign_unsigned()
                continue
            outcomes = self._write(batch, self._events)
            if outcomes is not None:
                failures = 0
                with self._cond:
                    for _ in batch:
                        self._queue.popleft()
                    self._done += len(batch)
                    self._cond.notify_all()
                # Outside the lock: waking an event loop is a system call, and on a busy core the woken loop
                # thread may run before this one gets the lock back to it (it then blocked on the lock to queue).
                _settle([waiter for _, waiter in batch], outcomes)
                continue
            with self._cond:
                failures += 1
                if self._closed and failures >= 3:
                    log.error("usage recorder: the database is down at shutdown; %d events lost", len(self._queue))
                    self.dropped += len(self._queue)
                    self._done += len(self._queue)
                    lost = _not_written()
                    _settle([waiter for _, waiter in self._queue], [lost] * len(self._queue))
                    self._queue.clear()
                    self._cond.notify_all()
                    continue
                self._cond.wait(min(0.1 * 2**failures, 5.0))  # close() wakes it early
        if self._unsigned:  # closed: one last checkpoint over what is left unsigned
            self._sign_unsigned()
        self._events.close()

    def _take(self) -> list[tuple[Usage, _Waiter]] | None:
        """The next batch (left in the queue until written); None once closed and empty.

        An empty batch asks `_run` to sign a checkpoint over events committed without one: when the recorder has
        been idle for `checkpoint_interval_s` since its last checkpoint.
        """
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                if not self._unsigned:
                    self._cond.wait()
                    continue
                due = self._signed_at + self.checkpoint_interval_s - time.monotonic()
                if due <= 0:
                    return []
                self._cond.wait(due)
            if self._expected > 0 and len(self._queue) < self.batch_size:
                self._linger()
            return list(itertools.islice(self._queue, self.batch_size))

    def _linger(self) -> None:
        """Under `_cond`: wait up to `linger_s` for the announced events, or a full batch, or `close`."""
        deadline = time.monotonic() + self.linger_s
        self._lingering = True
        try:
            while self._expected > 0 and len(self._queue) < self.batch_size and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)
        finally:
            self._lingering = False

    def _sign_unsigned(self) -> None:
        """Sign a checkpoint over the events committed without one; on failure, try again an interval later."""
        try:
            with self.db.unit(write=True, checkpoint=True):
                pass
        except AiprovError as e:
            log.warning("usage recorder: signing a checkpoint failed, will retry: %s", e.message)
            self._signed_at = time.monotonic()
            return
        self._signed_at = time.monotonic()
        self._unsigned = False

    def _write(
        self, batch: Sequence[tuple[Usage, Any]], writer: EventAppender, *, may_sign: bool = True
    ) -> list[AiprovError | None] | None:
        """Append `batch` in one transaction: each event's outcome (None: committed), or None to retry the batch.

        The batch signs a checkpoint when one is due and `may_sign`; otherwise it goes through `writer`.
        """
        outcomes: list[AiprovError | None] = []
        events: list[Event] = []
        for usage, _ in batch:
            try:
                events.append(usage.event())
                outcomes.append(None)
            except InvalidInput as e:
                with self._cond:
                    self.dropped += 1
                outcomes.append(e)
                log.error("usage recorder: refusing a %s event of %s: %s", usage.action, usage.digest, e.message)
        if not events:
            return outcomes
        sign = may_sign and time.monotonic() - self._signed_at >= self.checkpoint_interval_s
        try:
            if sign:
                with self.db.unit(write=True, checkpoint=True) as u:
                    u.add_events(events)
            else:
                writer.append(events)
        except BackendError as e:
            log.warning("usage recorder: writing %d events failed, will retry: %s", len(events), e.message)
            return None
        except AiprovError as e:  # the log refused the batch: not a passing failure, so retrying cannot help
            with self._cond:
                self.dropped += len(events)
            log.error("usage recorder: the log refused %d events: %s", len(events), e.diagnostics())
            return [e if outcome is None else outcome for outcome in outcomes]
        with self._cond:
            self.batches += 1
            if sign:
                self._signed_at = time.monotonic()
                self._unsigned = False
            elif not self._unsigned:
                self._unsigned = True
                self._cond.notify_all()  # the thread signs a checkpoint over it once one is due
        return outcomes


class _LoopQueue:
    """The usage one event loop's requests queued, written on that loop by callbacks (group commit, no thread).

    On SQLite a batch's commit is local work of a few hundred microseconds, less than handing the batch to a
    thread and its answers back cost (lock, wake-up, GIL hand-over: measured with one core serving 16 clients, a
    quarter of the API process's CPU per prediction). So the loop writes itself: the first event queued schedules
    a write as the loop's next callback, which first waits up to `linger_s` for announced events, then commits
    up to `batch_size` events over its own connection (`ports.EventAppender`) and answers their requests. Its connection
    waits at most 2 ms for the database's write lock (a push in progress, say), and a batch that fails is retried
    soon on the loop, never blocking it for long; the recorder's thread signs the checkpoints.
    """

    BUSY_TIMEOUT_MS = 2

    def __init__(self, recorder: UsageRecorder, loop: asyncio.AbstractEventLoop) -> None:
        self.recorder = recorder
        self.loop = loop
        self.items: list[tuple[Usage, asyncio.Future[None]]] = []
        self.expected = 0
        """Events announced on this loop (`UsageRecorder.expect`) and not yet queued or withdrawn."""
        self.writer = recorder.db.event_writer(busy_timeout_ms=self.BUSY_TIMEOUT_MS)
        self._handle: asyncio.Handle | None = None
        self._lingering = False
        self._failures = 0

    async def put(self, usage: Usage, done: asyncio.Future[None], *, expected: bool) -> None:
        """Queue `usage` (its request awaits `done`); wait while the queue is full. Raises BackendError."""
        if expected:
            self.settle_expected()
        recorder = self.recorder
        deadline = None
        while len(self.items) >= recorder.max_queued and not recorder._closed:  # back-pressure: the log is down
            deadline = deadline or time.monotonic() + recorder.put_timeout_s
            if time.monotonic() >= deadline:
                raise _not_keeping_up()
            await asyncio.sleep(0.01)
        if recorder._closed:
            raise _closed()
        self.items.append((usage, done))
        if self._handle is None:
            self._handle = self.loop.call_soon(self._flush)
        elif self._lingering and len(self.items) >= recorder.batch_size:
            self._now()

    def settle_expected(self) -> None:
        """One announced event is queued or withdrawn; a write waiting for the last one goes now."""
        self.expected -= 1
        if self._lingering and self.expected <= 0:
            self._now()

    def _now(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._handle = None
        if not self.items:
            return
        batch_size = self.recorder.batch_size
        if self.expected > 0 and len(self.items) < batch_size and not self._lingering:
            self._lingering = True
            self._handle = self.loop.call_later(self.recorder.linger_s, self._flush)
            return
        self._lingering = False
        batch = self.items[:batch_size]
        outcomes = self.recorder._write(batch, self.writer, may_sign=False)
        if outcomes is None:  # the database refused for now (locked, down): try again soon, on the loop
            self._failures += 1
            self._handle = self.loop.call_later(min(0.002 * 2**self._failures, 1.0), self._flush)
            return
        self._failures = 0
        del self.items[: len(batch)]
        _resolve([(future, outcome) for (_, future), outcome in zip(batch, outcomes, strict=True)])
        if self.items:
            self._handle = self.loop.call_soon(self._flush)

    def drain(self) -> None:
        """Write everything queued now, from any thread (the recorder is closing); answer on the loop."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        while self.items:
            batch = self.items[: self.recorder.batch_size]
            outcomes = self.recorder._write(batch, self.writer, may_sign=False)
            if outcomes is None:
                lost = _not_written()
                outcomes = [lost] * len(batch)
                with self.recorder._cond:
                    self.recorder.dropped += len(batch)
            del self.items[: len(batch)]
            answers = [(future, outcome) for (_, future), outcome in zip(batch, outcomes, strict=True)]
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                self.loop.call_soon_threadsafe(_resolve, answers)
        self.close()

    def close(self) -> None:
        self.writer.close()


def _settle(waiters: Sequence[_Waiter], outcomes: Sequence[AiprovError | None]) -> None:
    """Tell each waiter its event's outcome; one wake-up per event loop for the whole batch, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], AiprovError | None]]] = {}
    for waiter, outcome in zip(waiters, outcomes, strict=True):
        if isinstance(waiter, tuple):
            by_loop.setdefault(waiter[0], []).append((waiter[1], outcome))
        elif outcome is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(outcome)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[tuple[asyncio.Future[None], AiprovError | None]]) -> None:
    for future, outcome in futures:
        if future.done():  # its request timed out or went away
            continue
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)


def _not_keeping_up() -> BackendError:
    return BackendError(
        "the usage log is not keeping up; the request was refused so its use is not lost", hint="try again shortly"
    )


def _closed() -> BackendError:
    return BackendError("the usage recorder is closed (the server is shutting down)")


def _not_written() -> BackendError:
    return BackendError("the usage log could not be written; the use was not recorded")


def _not_committed(timeout: float) -> BackendError:
    return BackendError(
        f"the usage log did not commit within {timeout:g} s; the request is not acknowledged",
        hint="the database may be down; try again shortly",
    )


class UsageQueries:
    """Reading usage back from the events table: per model, version or user, newest first."""

    def __init__(self, db: EventStore) -> None:
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
