"""`WorkerPool.predict_async`: the same answers and errors as `predict`, waiting on the event loop, not a thread."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.sandbox.misbehaving import LOADER

from aiprov.errors import InvalidInput
from aiprov.sandbox import Limits, ModelExecutionError, ModelResourceError, ModelSpec, ModelTimeout, WorkerPool

LIMITS = Limits(memory_bytes=1024 * 2**20, cpu_seconds=5, timeout_s=1.5)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[WorkerPool]:
    with WorkerPool(1, LIMITS, loaders={"misbehaving": LOADER}, model_root=tmp_path) as p:
        yield p


def spec(tmp_path: Path, key: str = "good", **plan: str) -> ModelSpec:
    (tmp_path / key).write_text(json.dumps(plan))
    return ModelSpec(key=key, root=str(tmp_path), entry=key, format="misbehaving")


def test_async_answers_equal_sync_ones_and_waiters_share_one_worker(pool: WorkerPool, tmp_path: Path) -> None:
    good = spec(tmp_path)
    sync_pid = pool.predict(good, [[0.0]]).predictions[0][0]

    async def many() -> list[int]:
        answers = await asyncio.gather(*(pool.predict_async(good, [[0.0]] * (i + 1)) for i in range(20)))
        assert [len(a.predictions) for a in answers] == list(range(1, 21))
        return [a.predictions[0][0] for a in answers]

    assert set(asyncio.run(many())) == {sync_pid}  # one warm worker served them all, one at a time


def test_async_and_threaded_callers_share_the_pool(pool: WorkerPool, tmp_path: Path) -> None:
    slow = spec(tmp_path, "slow", predict="slow")  # 0.5 s each
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(pool.predict(slow, [[0.0]])))
    thread.start()

    async def run() -> None:
        await asyncio.gather(*(pool.predict_async(slow, [[0.0]]) for _ in range(2)))

    asyncio.run(run())
    thread.join()
    assert len(results) == 1


def test_async_timeout_and_errors_replace_the_worker_and_the_next_call_works(pool: WorkerPool, tmp_path: Path) -> None:
    async def run() -> None:
        with pytest.raises(ModelTimeout, match=r"within 1\.5 s"):
            await pool.predict_async(spec(tmp_path, "hang", predict="hang"), [[0.0]])
        with pytest.raises(ModelExecutionError, match="broken on purpose"):
            await pool.predict_async(spec(tmp_path, "raise", predict="raise"), [[0.0]])
        assert (await pool.predict_async(spec(tmp_path), [[0.0]])).predictions

    asyncio.run(run())
    assert pool.replaced == 1


def test_cancelled_call_stops_its_worker_so_no_stale_answer_reaches_the_next(pool: WorkerPool, tmp_path: Path) -> None:
    slow, good = spec(tmp_path, "slow", predict="slow"), spec(tmp_path)

    async def run() -> None:
        await pool.predict_async(good, [[0.0]])  # the worker is up: the cancel lands while the model runs
        task = asyncio.create_task(pool.predict_async(slow, [[0.0]] * 3))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        answer = await pool.predict_async(good, [[0.0]])
        assert len(answer.predictions) == 1

    asyncio.run(run())
    assert pool.replaced == 1


def test_closing_the_pool_wakes_waiting_coroutines(tmp_path: Path) -> None:
    pool = WorkerPool(1, LIMITS, loaders={"misbehaving": LOADER}, model_root=tmp_path)
    slow = spec(tmp_path, "slow", predict="slow")

    async def run() -> None:
        first = asyncio.create_task(pool.predict_async(slow, [[0.0]]))
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(pool.predict_async(slow, [[0.0]]))
        await asyncio.sleep(0.05)
        pool.close()
        with pytest.raises(InvalidInput, match="closed"):
            await waiting
        await first

    asyncio.run(run())


def test_large_requests_and_answers_cross_the_pipe_under_uvloop(pool: WorkerPool, tmp_path: Path) -> None:
    """uvicorn runs on uvloop, whose add_reader makes the pipe non-blocking: a request or answer larger than the
    pipe's buffer must still go through whole (it once failed as "the worker died")."""
    import uvloop

    good = spec(tmp_path)
    rows = [[float(i)] * 8 for i in range(60_000)]  # ~4 MB pickled, far beyond a 64 KiB pipe buffer

    async def twice() -> list[int]:
        first = await pool.predict_async(good, rows)
        second = await pool.predict_async(good, rows)
        return [len(first.predictions), len(second.predictions)]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(twice()) == [60_000, 60_000]
    assert pool.replaced == 0


def test_a_dying_worker_is_reaped_off_the_event_loop(
    pool: WorkerPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a dead worker is reaped (its process joined, up to 5 s), other coroutines keep running."""
    from aiprov.sandbox import pool as pool_module

    real_death = pool_module._Worker.death

    def slow_death(worker: pool_module._Worker) -> str:
        threading.Event().wait(1.0)  # a process that takes its time to go
        return real_death(worker)

    monkeypatch.setattr(pool_module._Worker, "death", slow_death)

    async def run() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        with pytest.raises(ModelResourceError, match="exited with status 3"):
            await pool.predict_async(spec(tmp_path, "exit", predict="exit"), [[0.0]])
        ticker.cancel()
        return ticks

    assert asyncio.run(run()) >= 10  # the ticker ran through the reaping's second, not after it
    assert pool.replaced == 1
