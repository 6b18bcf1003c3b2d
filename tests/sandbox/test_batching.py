"""Adaptive batching: concurrent requests for one model share worker calls, each gets exactly its own answer,
and a failure reaches only the request that caused it. A scripted pool stands in for the worker processes here
(pure logic); tests/api/test_inference.py runs the real thing under concurrent load."""

from __future__ import annotations

import asyncio
import gc
import random
import time
from typing import Any

import numpy as np
import pytest

from aiprov.errors import ModelExecutionError
from aiprov.sandbox.batching import Batcher
from aiprov.sandbox.spec import Prediction


class ScriptedPool:
    """Doubles every value of every row; a row holding -1 makes the whole call fail, as a model would."""

    def __init__(self, size: int = 1, *, rowwise: bool = True) -> None:
        self.size = size
        self.rowwise = rowwise
        self.calls: list[int] = []

    async def predict_async(self, spec: Any, rows: Any, *, proba: bool = False, timeout: float | None = None) -> Any:
        self.calls.append(len(rows))
        await asyncio.sleep(0.01)  # the worker is busy: requests arriving now queue up
        values = [list(map(float, r)) for r in rows]
        if any(-1 in r for r in values):
            raise ModelExecutionError("running the model failed: a bad row")
        predictions = [sum(r) * 2 for r in values] if self.rowwise else [0.0]
        probabilities = [[0.5, 0.5] for _ in values] if proba else None
        return Prediction(predictions, probabilities, ["a", "b"] if proba else None)


class Spec:
    """What the batcher reads of a model spec: its key."""

    def __init__(self, key: str) -> None:
        self.key = key


def spec(key: str = "sha256:model") -> Any:
    return Spec(key)


async def gather(batcher: Batcher, inputs: list[Any], *, proba: bool = False) -> list[Any]:
    """Send the first request, then, while the worker is busy with it, all the others at once."""
    s = spec()
    first = asyncio.ensure_future(batcher.predict_async(s, inputs[0], proba=proba))
    await asyncio.sleep(0.001)
    rest = [batcher.predict_async(s, x, proba=proba) for x in inputs[1:]]
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    pool = ScriptedPool()
    batcher = Batcher(pool)  # type: ignore[arg-type]
    inputs = [np.array([[i, 1.0]] * (1 + i % 3)) for i in range(16)]
    results = asyncio.run(gather(batcher, inputs))
    for x, r in zip(inputs, results, strict=True):
        assert r.predictions == [float(sum(row) * 2) for row in x]
    assert len(pool.calls) == 2  # the first alone, the 15 that arrived meanwhile together
    assert sum(pool.calls) == sum(len(x) for x in inputs)
    assert batcher.batched == 15 and batcher.calls == 2


def test_a_single_caller_is_never_delayed_or_batched() -> None:
    pool = ScriptedPool()
    batcher = Batcher(pool)  # type: ignore[arg-type]

    async def one_after_another() -> list[Any]:
        return [await batcher.predict_async(spec(), np.array([[i, 0.0]])) for i in range(5)]

    results = asyncio.run(one_after_another())
    assert [r.predictions for r in results] == [[float(2 * i)] for i in range(5)]
    assert pool.calls == [1] * 5 and batcher.batched == 0


def test_a_lone_caller_never_waits_for_a_round_to_fill() -> None:
    """Its last round was one request: however long the fill wait, nothing waits for a second."""
    pool = ScriptedPool()
    batcher = Batcher(pool, fill_wait_s=5.0)  # type: ignore[arg-type]

    async def one_after_another() -> float:
        start = time.monotonic()
        for i in range(5):
            await batcher.predict_async(spec(), np.array([[i, 0.0]]))
        return time.monotonic() - start

    assert asyncio.run(one_after_another()) < 1.0  # five scripted calls of 10 ms, no 5 s wait
    assert pool.calls == [1] * 5


async def round_of(batcher: Batcher, now: int, later: int, delay: float) -> list[Any]:
    """`now` requests at once, then `later` more `delay` seconds after (as a closed-loop client's stragglers)."""
    s = spec()
    futures = [asyncio.ensure_future(batcher.predict_async(s, np.array([[float(i), 0.0]]))) for i in range(now)]
    await asyncio.sleep(delay)
    futures += [asyncio.ensure_future(batcher.predict_async(s, np.array([[9.0, 0.0]]))) for _ in range(later)]
    return await asyncio.gather(*futures)


def test_a_round_waits_for_as_many_requests_as_the_last_one_served() -> None:
    pool = ScriptedPool()
    batcher = Batcher(pool, fill_wait_s=0.5)  # type: ignore[arg-type]

    async def rounds() -> tuple[list[Any], list[Any]]:
        first = await round_of(batcher, 4, 0, 0)
        second = await round_of(batcher, 3, 1, 0.02)  # the fourth arrives 20 ms late: the call waits for it
        return first, second

    _, second = asyncio.run(rounds())
    assert pool.calls == [4, 4]
    assert [r.predictions for r in second] == [[0.0], [2.0], [4.0], [18.0]]


def test_the_wait_for_a_round_to_fill_is_bounded() -> None:
    """Fewer requests than last time: the call goes after `fill_wait_s`, and the next round expects the fewer."""
    pool = ScriptedPool()
    batcher = Batcher(pool, fill_wait_s=0.1)  # type: ignore[arg-type]

    async def rounds() -> tuple[float, float]:
        await round_of(batcher, 4, 0, 0)
        start = time.monotonic()
        await round_of(batcher, 2, 0, 0)
        waited = time.monotonic() - start
        start = time.monotonic()
        await round_of(batcher, 2, 0, 0)
        return waited, time.monotonic() - start

    waited, then = asyncio.run(rounds())
    assert pool.calls == [4, 2, 2]
    assert 0.1 <= waited < 1.0  # waited for the two that never came, no longer than the bound (+ a 10 ms call)
    assert then < 0.1  # the round of two is now what is expected: no wait


def test_requests_received_with_a_lone_one_join_its_call() -> None:
    """The first request of a wave finds the worker free; those read on the next turns of the loop join it."""
    pool = ScriptedPool()
    batcher = Batcher(pool)  # type: ignore[arg-type]

    async def wave() -> list[Any]:
        s = spec()
        futures = [asyncio.ensure_future(batcher.predict_async(s, np.array([[1.0, 0.0]])))]

        def arrive() -> None:  # as the requests of sockets read on the next turn of the loop would
            for i in range(2, 5):
                futures.append(asyncio.ensure_future(batcher.predict_async(s, np.array([[float(i), 0.0]]))))

        asyncio.get_running_loop().call_soon(arrive)
        await asyncio.sleep(0.05)
        return await asyncio.gather(*futures)

    results = asyncio.run(wave())
    assert [r.predictions for r in results] == [[2.0], [4.0], [6.0], [8.0]]
    assert pool.calls == [4] and batcher.batched == 4


def test_a_bad_row_fails_only_its_request() -> None:
    pool = ScriptedPool()
    batcher = Batcher(pool)  # type: ignore[arg-type]
    inputs = [np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]]), np.array([[-1.0, 0.0]]), np.array([[5.0, 6.0]])]
    results = asyncio.run(gather(batcher, inputs))
    assert isinstance(results[2], ModelExecutionError)
    assert [r.predictions for i, r in enumerate(results) if i != 2] == [[6.0], [14.0], [22.0]]
    assert pool.calls == [1, 3, 1, 1, 1]  # the failed batch of three was re-run one by one


def test_probabilities_are_sliced_and_proba_is_batched_apart() -> None:
    pool = ScriptedPool()
    batcher = Batcher(pool)  # type: ignore[arg-type]

    async def mixed() -> list[Any]:
        s = spec()
        with_proba = [batcher.predict_async(s, np.array([[i, 0.0]] * 2), proba=True) for i in range(4)]
        without = [batcher.predict_async(s, np.array([[i, 0.0]])) for i in range(4)]
        return await asyncio.gather(*with_proba, *without)  # all queued before any call starts

    results = asyncio.run(mixed())
    assert all(r.probabilities == [[0.5, 0.5]] * 2 and r.classes == ["a", "b"] for r in results[:4])
    assert all(r.probabilities is None for r in results[4:])
    assert [r.predictions for r in results[4:]] == [[0.0], [2.0], [4.0], [6.0]]
    assert sorted(pool.calls) == [4, 8]  # one call per lane


def test_inputs_that_do_not_concatenate_are_not_batched_together() -> None:
    pool = ScriptedPool()
    batcher = Batcher(pool)  # type: ignore[arg-type]
    inputs = [np.array([[1.0, 1.0]]), np.array([[1.0, 1.0, 1.0]]), np.array([[2.0, 2.0]]), [[1.0, 2.0]]]
    results = asyncio.run(gather(batcher, inputs))
    assert [r.predictions for r in results] == [[4.0], [6.0], [8.0], [6.0]]
    assert pool.calls == [1, 1, 1, 1]  # 2 wide, 3 wide, then 2 wide again (not reordered), then plain rows


def test_a_model_whose_answer_does_not_split_by_rows_is_not_batched_again() -> None:
    pool = ScriptedPool(rowwise=False)
    batcher = Batcher(pool)  # type: ignore[arg-type]
    results = asyncio.run(gather(batcher, [np.array([[i, 0.0]]) for i in range(4)]))
    assert all(r.predictions == [0.0] for r in results)
    assert pool.calls == [1, 3, 1, 1, 1]
    pool.calls.clear()
    asyncio.run(gather(batcher, [np.array([[i, 0.0]]) for i in range(4)]))
    assert pool.calls == [1, 1, 1, 1]


def test_every_worker_serves_a_popular_model() -> None:
    pool = ScriptedPool(size=2)
    batcher = Batcher(pool)  # type: ignore[arg-type]

    async def all_at_once() -> list[Any]:
        s = spec()
        return await asyncio.gather(*(batcher.predict_async(s, np.array([[i, 0.0]])) for i in range(10)))

    results = asyncio.run(all_at_once())
    assert [r.predictions for r in results] == [[2.0 * i] for i in range(10)]
    assert pool.calls == [5, 5]  # two calls in flight, each with half the queue


@pytest.mark.parametrize("size", [1, 3])
def test_a_caller_that_goes_away_does_not_disturb_the_others(size: int) -> None:
    pool = ScriptedPool(size=size)
    batcher = Batcher(pool)  # type: ignore[arg-type]

    async def run() -> list[Any]:
        s = spec()
        tasks = [asyncio.ensure_future(batcher.predict_async(s, np.array([[i, 0.0]]))) for i in range(6)]
        await asyncio.sleep(0)
        tasks[3].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(run())
    assert isinstance(results[3], asyncio.CancelledError)
    assert [r.predictions for i, r in enumerate(results) if i != 3] == [[0.0], [2.0], [4.0], [8.0], [10.0]]


class JitteryPool(ScriptedPool):
    """A call takes 0 to 3 turns of the event loop (seeded), so drains finish and restart in every order."""

    def __init__(self, size: int, seed: int) -> None:
        super().__init__(size)
        self.random = random.Random(seed)

    async def predict_async(self, spec: Any, rows: Any, *, proba: bool = False, timeout: float | None = None) -> Any:
        self.calls.append(len(rows))
        for _ in range(self.random.randrange(4)):
            await asyncio.sleep(0)
        return Prediction([sum(map(float, r)) * 2 for r in rows], None, None)


@pytest.mark.parametrize("size", [2, 4])
@pytest.mark.parametrize("seed", range(5))
def test_concurrent_clients_each_get_their_answer_whatever_the_interleaving(size: int, seed: int) -> None:
    """4 clients predicting back to back, as the API's connections do; drains of one lane race for its queue.

    A drain that yielded to let a lone request gather company used to find the queue emptied by another drain
    meanwhile and fail with IndexError (issue 14)."""
    pool = JitteryPool(size, seed)
    batcher = Batcher(pool)  # type: ignore[arg-type]
    jitter = random.Random(seed + 100)

    async def client(c: int) -> list[list[float]]:
        answers = []
        for i in range(150):
            for _ in range(jitter.randrange(3)):
                await asyncio.sleep(0)
            answers.append((await batcher.predict_async(spec(), np.array([[float(c), float(i)]]))).predictions)
        return answers

    failures: list[dict[str, Any]] = []  # what the loop reports of a drain task that died

    async def run() -> list[list[list[float]]]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: failures.append(context))
        answers = await asyncio.gather(*(client(c) for c in range(4)))
        gc.collect()  # a dead task reports its exception when it is collected
        return answers

    results = asyncio.run(run())
    assert [f.get("exception") for f in failures] == []
    for c, answers in enumerate(results):
        assert answers == [[2.0 * (c + i)] for i in range(150)]
    assert sum(pool.calls) == 4 * 150
    assert not batcher._lanes  # every drain ended and the idle lane was dropped
