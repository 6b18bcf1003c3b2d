"""Concurrent predictions for one model coalesced into one worker call: adaptive batching.

A request that finds a worker free for its model runs at once, with whatever requests the server has already
received: it lets the event loop turn twice first (no timer), so requests read from other connections in the
meantime join it. Requests that arrive while every allowed call for that model is in flight queue up, and the
next call carries all of them as one batch: the rows are concatenated, the model runs once, and each request
gets its own slice of the answer. Under load the per-call costs (the hop to the worker process, pickling, the
estimator's input validation) are paid once per batch instead of once per request. Measured with
`benchmarks/bench_serving.py` at 16 connections: without the two turns, calls alternated between a lone request
(the first of a new wave) and a batch of the rest; with them, 1-row throughput rose by about 10%.

Under load only, the first call of a round may also wait, at most `FILL_WAIT_S` (0.5 ms), for as many requests
as the model's last round served (see `Batcher`): with 16 clients each round had been a call of 15 and a call of
the one straggler. A single caller never waits (its rounds are of one request) and pays two empty turns of the
loop (microseconds).

Batching assumes a model's answer for a row does not depend on the other rows, which holds for predict and
predict_proba of scikit-learn estimators and for row-wise ONNX graphs. Requests are batched only with requests
for the same model and the same `proba`, whose inputs concatenate (numeric arrays of one width and dtype, or
plain rows). When a batch fails, its requests are run one by one, so an error (a bad row, a crash, a timeout)
reaches only the request that caused it; a model whose batched answer does not split by rows is not batched
again.

Written here because no serving library fits in front of aiprov's sandboxed worker pool; the logic is the
dynamic batching of Triton or TorchServe, without their fixed wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiprov.errors import AiprovError
from aiprov.sandbox.spec import Prediction

if TYPE_CHECKING:
    from aiprov.sandbox.pool import WorkerPool
    from aiprov.sandbox.spec import ModelSpec

MAX_BATCH_ROWS = 8192
"""A batch stops growing at this many rows (a larger single request still runs, alone)."""

FILL_WAIT_S = 0.0005
"""How long a lane's first call of a round may wait for the requests its last round had (see `Batcher`)."""


@dataclass(eq=False)
class _Request:
    rows: Any
    count: int
    future: asyncio.Future[Prediction]


@dataclass
class _Lane:
    """The queue and the calls in flight for one (model, proba)."""

    waiting: list[_Request] = field(default_factory=list)
    running: int = 0
    """Drains started (each makes one call at a time)."""
    busy: int = 0
    """Drains in a call now."""
    served: int = 0
    """Requests taken into calls since the lane was made: one round of the lane."""
    want: int = 0
    more: asyncio.Future[None] | None = None
    """Set while a drain waits for `want` requests in this round (`Batcher._fill`)."""


class Batcher:
    """`WorkerPool.predict_async` with concurrent requests for one model coalesced (see the module's docstring).

    At most `pool.size` calls per model are in flight, so every worker can serve a popular model while the
    requests that find them all busy are batched. Statistics: `calls` (worker calls made) and `batched`
    (requests that shared a call with others). Used from one event loop (the API process's).

    A round of a lane is what it serves from its first request until it is idle again. Closed-loop callers come
    back in rounds of about the same size: with 16 clients, a round was a call of 15 requests, then a call of the
    one whose request arrived a few hundred microseconds later (`benchmarks/bench_serving.py`: a worker call of
    one row costs the API process and the worker about 190 us of CPU). So the first call of a round, when fewer
    requests are waiting than the lane's last round served, waits up to `fill_wait_s` for the rest, and goes as
    soon as they are there. A lone caller's last round was one request: it never waits; when the load drops,
    one round waits at most `fill_wait_s` and the next expects the smaller size.
    """

    def __init__(self, pool: WorkerPool, *, max_rows: int = MAX_BATCH_ROWS, fill_wait_s: float = FILL_WAIT_S) -> None:
        self.pool = pool
        self.max_rows = max_rows
        self.fill_wait_s = fill_wait_s
        self._lanes: dict[tuple[str, bool], _Lane] = {}
        self._rounds: dict[tuple[str, bool], int] = {}  # requests each lane's last round served
        self._unbatchable: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.batched = 0

    async def predict_async(
        self, spec: ModelSpec, rows: Any, *, proba: bool = False, timeout: float | None = None
    ) -> Prediction:
        """As `WorkerPool.predict_async` (same errors): the answer for `rows`, run alone or in a batch."""
        count = _count(rows)
        if spec.key in self._unbatchable or count is None:
            self.calls += 1
            return await self.pool.predict_async(spec, rows, proba=proba, timeout=timeout)
        lane = self._lanes.setdefault((spec.key, proba), _Lane())
        request = _Request(rows, count, asyncio.get_running_loop().create_future())
        lane.waiting.append(request)
        if lane.more is not None and lane.served + len(lane.waiting) >= lane.want and not lane.more.done():
            lane.more.set_result(None)
        if lane.running < self.pool.size:
            lane.running += 1
            task = asyncio.get_running_loop().create_task(self._drain(spec, proba, timeout, lane))
            self._tasks.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._tasks.discard)
        return await request.future

    async def _drain(self, spec: ModelSpec, proba: bool, timeout: float | None, lane: _Lane) -> None:
        """Run what is waiting, batch after batch, until nothing is; then this call slot is free again."""
        try:
            while lane.waiting:
                if len(lane.waiting) == 1:
                    await _received_first()
                if lane.served == 0 and lane.busy == 0 and lane.more is None:
                    await self._fill(lane, self._rounds.get((spec.key, proba), 0))
                if not lane.waiting:  # another drain of the lane took the requests meanwhile
                    continue
                batch = self._take(lane)
                lane.served += len(batch)
                lane.busy += 1
                try:
                    await self._run(spec, proba, timeout, batch)
                finally:
                    lane.busy -= 1
        finally:
            lane.running -= 1
            if not lane.waiting and not lane.running:
                self._lanes.pop((spec.key, proba), None)
                if len(self._rounds) >= 4096:  # one entry per model served: forget them all past that
                    self._rounds.clear()
                self._rounds[(spec.key, proba)] = lane.served

    async def _fill(self, lane: _Lane, want: int) -> None:
        """Wait up to `fill_wait_s` until `want` requests are waiting (none if they already are)."""
        want = min(want, self.max_rows)
        if len(lane.waiting) >= want or self.fill_wait_s <= 0:
            return
        loop = asyncio.get_running_loop()
        lane.want, lane.more = want, loop.create_future()
        timer = loop.call_later(self.fill_wait_s, _wake, lane.more)
        try:
            await lane.more
        finally:
            timer.cancel()
            lane.more = None

    def _take(self, lane: _Lane) -> list[_Request]:
        """The longest prefix of the queue whose inputs concatenate, within `max_rows` (at least one request).

        With several calls in flight for the lane, each takes its share of the queue, so every worker works.
        """
        first = lane.waiting[0]
        share = -(-len(lane.waiting) // (lane.running - lane.busy))  # split among the drains not in a call
        batch, rows = [first], first.count
        for request in lane.waiting[1:share]:
            if rows + request.count > self.max_rows or not _compatible(first.rows, request.rows):
                break
            batch.append(request)
            rows += request.count
        del lane.waiting[: len(batch)]
        return batch

    async def _run(self, spec: ModelSpec, proba: bool, timeout: float | None, batch: list[_Request]) -> None:
        live = [r for r in batch if not r.future.done()]  # a caller that went away needs no answer
        if not live:
            return
        if len(live) == 1:
            await self._alone(spec, proba, timeout, live[0])
            return
        self.calls += 1
        try:
            answer = await self.pool.predict_async(spec, _concat([r.rows for r in live]), proba=proba, timeout=timeout)
        except AiprovError:
            answer = None  # one request's rows may be at fault: run each alone, so only it fails
        except BaseException as e:  # handed to every caller, which re-raises it
            for r in live:
                if not r.future.done():
                    r.future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        parts = _split(answer, [r.count for r in live]) if answer is not None else None
        if answer is not None and parts is None:
            self._unbatchable.add(spec.key)  # its answers do not split by rows: never batch it again
        if parts is None:
            for r in live:
                await self._alone(spec, proba, timeout, r)
            return
        self.batched += len(live)
        for r, part in zip(live, parts, strict=True):
            if not r.future.done():
                r.future.set_result(part)

    async def _alone(self, spec: ModelSpec, proba: bool, timeout: float | None, request: _Request) -> None:
        self.calls += 1
        try:
            result = await self.pool.predict_async(spec, request.rows, proba=proba, timeout=timeout)
        except BaseException as e:  # handed to the request's caller, which re-raises it
            if not request.future.done():
                request.future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        if not request.future.done():
            request.future.set_result(result)


async def _received_first() -> None:
    """Let requests already received join a lone one: two turns of the event loop, not a wait.

    The first turn reads the sockets that are ready and starts their requests' tasks; the second runs those
    tasks up to this batcher. Under load this turns the alternation of a lone call and a large batch (the first
    request of a new wave finds the worker free) into large batches; alone, a request pays two empty turns of
    the loop (microseconds).
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _count(rows: Any) -> int | None:
    """How many rows `rows` holds, if it is something this module can concatenate (2-D array or list of rows)."""
    shape = getattr(rows, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) == 2 else None
    return len(rows) if isinstance(rows, list) else None


def _compatible(a: Any, b: Any) -> bool:
    if hasattr(a, "shape") and hasattr(b, "shape"):
        return bool(a.shape[1] == b.shape[1] and a.dtype == b.dtype)
    return isinstance(a, list) and isinstance(b, list)


def _concat(parts: Sequence[Any]) -> Any:
    if hasattr(parts[0], "shape"):
        import numpy as np

        return np.concatenate(parts)
    return [row for part in parts for row in part]


def _split(answer: Prediction, counts: list[int]) -> list[Prediction] | None:
    """Each request's slice of a batch's answer; None if the answer does not have one entry per row."""
    total = sum(counts)
    predictions, probabilities = answer.predictions, answer.probabilities
    if not isinstance(predictions, list) or len(predictions) != total:
        return None
    if probabilities is not None and (not isinstance(probabilities, list) or len(probabilities) != total):
        return None
    parts, start = [], 0
    for n in counts:
        end = start + n
        part_proba = None if probabilities is None else probabilities[start:end]
        parts.append(Prediction(predictions[start:end], part_proba, answer.classes))
        start = end
    return parts
