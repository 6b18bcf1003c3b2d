"""A pool of worker processes that load and run models with time and memory limits.

Workers are started with the spawn context: a fresh interpreter that shares nothing with the caller, not a fork
of a process holding database connections and threads. A worker that hangs past the timeout, dies (killed by
a limit, a segfault, an exit) or runs out of memory is killed and replaced before the error is raised, so the
next request finds a healthy pool. The pool is thread-safe: each request holds one worker while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Any

from aiprov.errors import InvalidInput, ModelExecutionError, ModelResourceError, ModelTimeout
from aiprov.sandbox.loaders import DEFAULT_LOADERS
from aiprov.sandbox.spec import Limits, ModelSpec, Prediction

_SIGNALS = {
    signal.SIGKILL: "was killed (SIGKILL: out of memory, or killed from outside)",
    signal.SIGSEGV: "crashed (segmentation fault)",
    signal.SIGBUS: "crashed (bus error)",
    signal.SIGABRT: "aborted",
    signal.SIGXCPU: "exceeded its CPU time limit",
    signal.SIGFPE: "crashed (floating point exception)",
}


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, ctx: Any, limits: Limits, loaders: dict[str, str], capacity: int) -> None:
        from aiprov.sandbox import worker

        self.conn, child = ctx.Pipe(duplex=True)
        self.process: BaseProcess = ctx.Process(
            target=worker.main, args=(child, limits, loaders, capacity), name="aiprov-model-worker", daemon=True
        )
        self.process.start()
        child.close()
        self.warm: set[str] = set()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def death(self) -> str:
        """How the process ended, in words."""
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is None:
            return "stopped answering"
        if code < 0:
            return _SIGNALS.get(signal.Signals(-code), f"was killed by signal {-code}")
        return f"exited with status {code}"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(("stop",))
        self.process.join(timeout=2)
        self.kill()


class WorkerPool:
    """`size` worker processes, started on first use, each with `limits`.

    `loaders` adds or overrides format loaders as "module:function" import paths (see
    `aiprov.sandbox.loaders`); each worker keeps up to `warm_models` loaded models, by spec key.
    """

    def __init__(
        self,
        size: int = 2,
        limits: Limits | None = None,
        *,
        loaders: Mapping[str, str] | None = None,
        warm_models: int = 4,
        start_method: str = "spawn",
    ) -> None:
        if size < 1:
            raise InvalidInput("a worker pool needs at least one worker")
        if start_method not in ("spawn", "forkserver"):
            raise InvalidInput("workers start with 'spawn' or 'forkserver', never by forking the caller")
        self.size = size
        self.limits = limits or Limits()
        self.loaders = {**DEFAULT_LOADERS, **(loaders or {})}
        self.warm_models = warm_models
        self._ctx = multiprocessing.get_context(start_method)
        self._idle: list[_Worker] = []
        self._started = 0
        self._cond = threading.Condition()
        self._closed = False
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self.replaced = 0
        """How many workers were killed and replaced (for tests and monitoring)."""

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self.limits, self.loaders, self.warm_models)

    def _try_take(self, key: str) -> tuple[bool, _Worker | None]:
        """Under `_cond`: take a worker without waiting.

        (True, an idle worker, preferring one with `key` warm), (True, None) for a slot to spawn a worker in, or
        (False, None) when every worker is busy. Raises InvalidInput once the pool is closed.
        """
        if self._closed:
            raise InvalidInput("the worker pool is closed")
        if self._idle:
            warm = [w for w in self._idle if key in w.warm]
            chosen = (warm or self._idle)[-1]
            self._idle.remove(chosen)
            return True, chosen
        if self._started < self.size:
            self._started += 1
            return True, None
        return False, None

    def _give_back(self, worker: _Worker | None) -> None:
        """Return a held worker (None, or a killed one: its slot) and wake one thread and one coroutine waiting."""
        with self._cond:
            if worker is not None and not worker.conn.closed:
                self._idle.append(worker)
            else:
                self._started -= 1  # its replacement starts on the next request
            self._wake_one()

    def _wake_one(self) -> None:
        """Under `_cond`: wake one thread and one coroutine waiting for a worker."""
        self._cond.notify()
        while self._waiters:
            loop, waiter = self._waiters.popleft()
            if not waiter.done():
                loop.call_soon_threadsafe(self._resolve, waiter)
                return

    def _resolve(self, waiter: asyncio.Future[None]) -> None:
        """On the waiter's loop: wake it, or pass the wake-up on if it was cancelled meanwhile."""
        if waiter.done():
            with self._cond:
                self._wake_one()
        else:
            waiter.set_result(None)

    @contextmanager
    def _worker(self, key: str) -> Iterator[_Worker]:
        """Hold a worker for one request, preferring one that has `key` loaded; give back a healthy one."""
        with self._cond:
            while True:
                took, chosen = self._try_take(key)
                if took:
                    break
                self._cond.wait()
        held: _Worker | None = None
        try:
            held = chosen if chosen is not None else self._spawn()
            yield held
        finally:
            self._give_back(held)

    async def _worker_async(self, key: str) -> _Worker:
        """As `_worker`, waiting on the running event loop; the caller gives the worker back with `_give_back`."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                took, chosen = self._try_take(key)
                if not took:
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._waiters.append((loop, waiter))
            if took:
                try:
                    return chosen if chosen is not None else self._spawn()
                except BaseException:
                    self._give_back(None)
                    raise
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # woken, then cancelled: pass the wake-up on
                    with self._cond:
                        self._wake_one()
                raise

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self.replaced += 1

    def _call(self, spec: ModelSpec, op: str, args: tuple[Any, ...], timeout: float | None) -> Any:
        wait = self.limits.timeout_s if timeout is None else timeout
        with self._worker(spec.key) as w:
            try:
                w.conn.send(_request(w, spec, op, args))
                ready = w.conn.poll(wait)
                answer = w.conn.recv() if ready else None
            except (EOFError, OSError, BrokenPipeError):
                raise self._died(w) from None
            return self._settle(w, answer, wait)

    async def _call_async(self, spec: ModelSpec, op: str, args: tuple[Any, ...], timeout: float | None) -> Any:
        wait = self.limits.timeout_s if timeout is None else timeout
        w = await self._worker_async(spec.key)
        try:
            loop = asyncio.get_running_loop()
            readable: asyncio.Future[bool] = loop.create_future()
            fd = w.conn.fileno()
            try:
                # uvloop's add_reader leaves the pipe non-blocking: a message larger than the pipe's buffer would
                # then fail half-way with EAGAIN. Sends and receives block; only the wait for the answer is async.
                os.set_blocking(fd, True)
                w.conn.send(_request(w, spec, op, args))
                loop.add_reader(fd, _settle_future, readable, True)
                timer = loop.call_later(wait, _settle_future, readable, False)  # lighter than asyncio.wait_for
                try:
                    ready = await readable
                finally:
                    timer.cancel()
                    loop.remove_reader(fd)
                os.set_blocking(fd, True)
                answer = w.conn.recv() if ready else None
            except (EOFError, OSError, BrokenPipeError):
                # Reaping the dead process may wait on it (up to 5 s): on a thread, so the loop serves the others.
                raise (await asyncio.to_thread(self._died, w)) from None
            except asyncio.CancelledError:  # its answer would reach the next request: stop the worker
                self._replace(w)
                raise
            return self._settle(w, answer, wait)
        finally:
            self._give_back(w)

    def _died(self, w: _Worker) -> ModelResourceError:
        how = w.death()
        self._replace(w)
        return ModelResourceError(f"the model's worker {how}", hint=_hint(how))

    def _settle(self, w: _Worker, answer: Any, wait: float) -> Any:
        """The payload of a worker's answer (None: none came in time), or the error it stands for."""
        if answer is None:
            self._replace(w)
            raise ModelTimeout(
                f"the model did not answer within {wait:g} s; its worker was stopped",
                hint="a model that needs longer can be given a larger timeout",
            )
        status, payload, *rest = answer
        if status == "ok":
            w.warm = set(rest[0])
            return payload
        message, warm = rest
        w.warm = set(warm)
        if payload == "memory":
            self._replace(w)
            raise ModelResourceError(
                f"the model ran out of memory ({message})",
                hint=f"the limit is {self.limits.memory_bytes // 2**20} MiB per worker",
            )
        what = "loading the model" if payload == "load" else "running the model"
        raise ModelExecutionError(f"{what} failed: {message}")

    def load(self, spec: ModelSpec, *, timeout: float | None = None) -> None:
        """Load `spec` in a worker (warming it). Raises ModelExecutionError (or a subclass) as `predict`."""
        self._call(spec, "load", (), timeout)

    def predict(
        self, spec: ModelSpec, rows: Sequence[Sequence[Any]] | Any, *, proba: bool = False, timeout: float | None = None
    ) -> Prediction:
        """Run the model of `spec` on `rows` in a worker; with `proba`, also its class probabilities if it has any.

        Raises ModelExecutionError when loading or predicting raises, ModelTimeout when no answer comes within the
        timeout (default `limits.timeout_s`), ModelResourceError when the worker runs out of memory, exceeds its CPU
        time or dies; in the last two cases the worker was replaced.
        """
        answer = self._call(spec, "run", (rows, proba), timeout)
        return Prediction(answer["predictions"], answer["probabilities"], answer["classes"])

    async def predict_async(
        self, spec: ModelSpec, rows: Sequence[Sequence[Any]] | Any, *, proba: bool = False, timeout: float | None = None
    ) -> Prediction:
        """`predict` for an event loop: waits for a free worker and for its answer on the loop, holding no thread.

        Raises as `predict`. Cancelled while the model runs, the worker is stopped and replaced.
        """
        answer = await self._call_async(spec, "run", (rows, proba), timeout)
        return Prediction(answer["predictions"], answer["probabilities"], answer["classes"])

    def pids(self) -> list[int]:
        """Process ids of the idle workers."""
        with self._cond:
            return [w.pid for w in self._idle if w.pid is not None]

    def close(self) -> None:
        """Stop every idle worker; the pool refuses requests afterwards."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            waiters, self._waiters = self._waiters, deque()
            self._cond.notify_all()
        for loop, waiter in waiters:  # they wake to find the pool closed
            with contextlib.suppress(RuntimeError):  # their loop is gone
                loop.call_soon_threadsafe(_wake, waiter)
        for w in idle:
            w.stop()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _request(w: _Worker, spec: ModelSpec, op: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The message for `op` on `spec`: a worker that has the model loaded gets only its key.

    Pickling a spec (its paths) cost about 25 us a call on both ends. `w.warm` is what the worker said it
    holds in its last answer, and a worker loads or evicts models only on its parent's requests, so it is exact.
    """
    return (op, spec.key if spec.key in w.warm else spec, *args)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _settle_future(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def _hint(how: str) -> str:
    if "memory" in how:
        return "the model may need more memory than a worker may use"
    if "CPU" in how:
        return "the model used more CPU time than a request may"
    return "the worker was replaced; the model may be corrupt or hostile"
