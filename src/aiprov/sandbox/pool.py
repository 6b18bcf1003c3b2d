"""A pool of worker processes that load and run models with time and memory limits, each in a sandbox.

Workers are fresh interpreters (`python -I`, never a fork of a process holding database connections and
threads) started with an environment written from scratch: none of the caller's variables, secrets included,
reach them, not even in /proc/self/environ. Each confines itself before loading any model (see
`aiprov.sandbox.isolation`) and reports which protections hold; the pool logs that report, and in strict mode
refuses a worker that lacks one. A worker that hangs past the timeout, dies (killed by a limit, a segfault, an
exit) or runs out of memory is killed and replaced before the error is raised, so the next request finds a
healthy pool. The pool is thread-safe: each request holds one worker while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiprov.errors import InvalidInput, ModelExecutionError, ModelResourceError, ModelTimeout, SandboxUnavailable
from aiprov.sandbox.isolation import Confinement, SandboxMode, StartReport
from aiprov.sandbox.loaders import DEFAULT_LOADERS
from aiprov.sandbox.spec import Limits, ModelSpec, Prediction

log = logging.getLogger("aiprov.sandbox")

_SIGNALS = {
    signal.SIGKILL: "was killed (SIGKILL: out of memory, or killed from outside)",
    signal.SIGSEGV: "crashed (segmentation fault)",
    signal.SIGBUS: "crashed (bus error)",
    signal.SIGABRT: "aborted",
    signal.SIGXCPU: "exceeded its CPU time limit",
    signal.SIGFPE: "crashed (floating point exception)",
}


def worker_environment(tmp: str | Path) -> dict[str, str]:
    """The whole environment of a worker whose private temp dir is `tmp`: nothing is copied from the caller."""
    from aiprov.sandbox.worker import THREAD_VARS

    # JOBLIB_MULTIPROCESSING=0: a worker runs serially (the pool gives the parallelism), and joblib would
    # otherwise warn on import that Landlock keeps it out of /dev/shm.
    env = {"LANG": "C.UTF-8", "HOME": str(tmp), "TMPDIR": str(tmp), "JOBLIB_MULTIPROCESSING": "0"}
    return {**env, **dict.fromkeys(THREAD_VARS, "1")}


def python_path(private: Sequence[str | Path] = ()) -> tuple[str, ...]:
    """The caller's import path, which a worker imports from and may read and execute.

    The current directory ("") becomes its absolute path. An entry that is "/" or holds the user's home or one
    of the `private` directories (the hub's home) is left out: granting it would grant those to every model.
    """
    secret = [Path(p).resolve() for p in (Path.home(), *private)]
    kept: list[str] = []
    for entry in sys.path:
        path = Path(entry or os.getcwd()).resolve()
        if path == Path("/") or any(path == p or path in p.parents for p in secret):
            continue
        kept.append(str(path))
    return tuple(dict.fromkeys(kept))


class _Worker:
    """One worker process, the parent's end of its socket, its private temp dir and its start report."""

    def __init__(
        self, limits: Limits, loaders: dict[str, str], capacity: int, confinement: Confinement, path: Sequence[str]
    ) -> None:
        from aiprov.sandbox.worker import BOOTSTRAP, WorkerStart

        self.tmp = tempfile.mkdtemp(prefix="aiprov-worker-")  # mode 0700; removed when the worker is stopped
        env = worker_environment(self.tmp)
        plan = Confinement(
            mode=confinement.mode,
            read_exec=confinement.read_exec,
            read=confinement.read,
            read_write=(self.tmp,),
            env_names=frozenset(env),
            without=confinement.without,
        )
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", BOOTSTRAP, str(theirs.fileno())],
                env=env,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=2,  # a model that prints must not write into the caller's stdout (the CLI's JSON, say)
                cwd=self.tmp,
            )
        except BaseException:
            ours.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.warm: set[str] = set()
        self.report: StartReport | None = None
        self.conn.send(list(path))
        self.conn.send(WorkerStart(limits, loaders, capacity, plan))

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def read_report(self, timeout: float) -> StartReport:
        """The worker's start report. Raises ModelResourceError if none comes within `timeout` seconds."""
        try:
            doc = receive(self.conn) if self.conn.poll(timeout) else None
            answer = StartReport.from_json(doc) if isinstance(doc, dict) else None
        except (EOFError, OSError, NotPlainData, KeyError, TypeError, ValueError):
            answer = None
        if answer is None:
            how = self.death() if self.process.poll() is not None else "did not start in time"
            self.kill()
            raise ModelResourceError(f"a model worker {how} before confining itself", hint="see its stderr")
        self.report = answer
        return answer

    def death(self) -> str:
        """How the process ended, in words."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code < 0:
            return _SIGNALS.get(signal.Signals(-code), f"was killed by signal {-code}")
        return f"exited with status {code}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.conn.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(("stop",))
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)
        self.kill()


class WorkerPool:
    """`size` worker processes, started on first use, each with `limits`, confined to read models under `model_root`.

    `loaders` adds or overrides format loaders as "module:function" import paths (see
    `aiprov.sandbox.loaders`); each worker keeps up to `warm_models` loaded models, by spec key. Workers may read
    only under `model_root` (default: a private temp dir the pool makes and removes on `close`; `SandboxedModels`
    writes there); a spec elsewhere is refused. `sandbox` is the mode (see `aiprov.config.Settings.sandbox`);
    `without` names layers to leave out (see `Confinement.without`); `private` names directories (the hub's home)
    that no import path entry may open to workers.
    """

    def __init__(
        self,
        size: int = 2,
        limits: Limits | None = None,
        *,
        loaders: Mapping[str, str] | None = None,
        warm_models: int = 4,
        model_root: str | Path | None = None,
        sandbox: SandboxMode = "best-effort",
        without: Collection[str] = (),
        private: Sequence[str | Path] = (),
    ) -> None:
        from aiprov.sandbox.isolation import LAYERS

        if size < 1:
            raise InvalidInput("a worker pool needs at least one worker")
        if sandbox not in ("strict", "best-effort", "off"):
            raise InvalidInput(f"unknown sandbox mode {sandbox!r}", hint="strict, best-effort or off")
        unknown = set(without) - set(LAYERS)
        if unknown:
            raise InvalidInput(f"unknown sandbox layers: {', '.join(sorted(unknown))}", hint=", ".join(LAYERS))
        self.size = size
        self.limits = limits or Limits()
        self.loaders = {**DEFAULT_LOADERS, **(loaders or {})}
        self.warm_models = warm_models
        self._own_root = model_root is None
        root = Path(tempfile.mkdtemp(prefix="aiprov-models-")) if model_root is None else Path(model_root)
        self.model_root = root.resolve()
        """Where workers may read models (and nowhere else but their Python and their temp dir)."""
        self._root_prefix = os.path.join(str(self.model_root), "")
        self.confinement = Confinement(
            mode=sandbox, read_exec=python_path(private), read=(str(self.model_root),), without=frozenset(without)
        )
        self._idle: list[_Worker] = []
        self._live: weakref.WeakSet[_Worker] = weakref.WeakSet()
        self._started = 0
        self._cond = threading.Condition()
        self._closed = False
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        # Workers outlive nothing: at interpreter exit (as multiprocessing's daemon processes) they are killed.
        self._finalizer = weakref.finalize(self, _kill_all, self._live)
        self.replaced = 0
        """How many workers were killed and replaced (for tests and monitoring)."""

    def _spawn(self) -> _Worker:
        """A new worker, confined: its start report is logged, and in strict mode an incomplete one refused.

        Raises SandboxUnavailable (strict, a protection missing), ModelResourceError (it died starting).
        """
        w = _Worker(self.limits, self.loaders, self.warm_models, self.confinement, self.confinement.read_exec)
        self._live.add(w)
        report = w.read_report(max(self.limits.timeout_s, 60.0))
        if report.complete:
            log.info("model worker %d started in a complete sandbox: %s", report.pid, report.summary())
            return w
        if self.confinement.mode == "strict":
            w.kill()
            log.error("model worker %d refused (AIPROV_SANDBOX=strict): %s", report.pid, report.summary())
            raise SandboxUnavailable(
                "refusing to run models: the sandbox is incomplete (AIPROV_SANDBOX=strict): "
                + "; ".join(f"{p.name}: {p.detail}" for p in report.missing),
                hint="`aiprov doctor` shows each protection",
            )
        log.warning("model worker %d started with protections missing: %s", report.pid, report.summary())
        return w

    def probe(self) -> StartReport:
        """Start one worker, return its start report and stop it (`aiprov doctor`); never refuses.

        Raises ModelResourceError if the worker dies before reporting.
        """
        w = _Worker(self.limits, self.loaders, self.warm_models, self.confinement, self.confinement.read_exec)
        try:
            return w.read_report(max(self.limits.timeout_s, 60.0))
        finally:
            w.stop()

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
            closed = self._closed
            if worker is not None and not worker.conn.closed and not closed:
                self._idle.append(worker)
            else:
                self._started -= 1  # its replacement starts on the next request
            self._wake_one()
        if closed and worker is not None:  # held while the pool closed: nobody would stop it
            worker.stop()

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
                if chosen is not None:
                    return chosen
                return await self._spawn_async()
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # woken, then cancelled: pass the wake-up on
                    with self._cond:
                        self._wake_one()
                raise

    async def _spawn_async(self) -> _Worker:
        """`_spawn` on a thread, so the loop serves other requests while a worker starts and confines itself.

        Cancelled, the worker still starts and joins the idle ones.
        """
        spawning = asyncio.ensure_future(asyncio.to_thread(self._spawn))
        try:
            return await asyncio.shield(spawning)
        except asyncio.CancelledError:
            spawning.add_done_callback(self._adopt)
            raise
        except BaseException:
            self._give_back(None)
            raise

    def _adopt(self, spawning: asyncio.Future[_Worker]) -> None:
        failed = spawning.cancelled() or spawning.exception() is not None
        self._give_back(None if failed else spawning.result())

    def _request(self, w: _Worker, spec: ModelSpec, op: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The message for `op` on `spec`: a worker that has the model loaded gets only its key.

        Pickling a spec (its paths) cost about 25 us a call on both ends. `w.warm` is what the worker said it
        holds in its last answer, and a worker loads or evicts models only on its parent's requests, so it is
        exact. Raises InvalidInput for a spec outside the model root: the worker could not read it.
        """
        if spec.key in w.warm:
            return (op, spec.key, *args)
        if not os.path.join(os.path.realpath(spec.root), "").startswith(self._root_prefix):
            raise InvalidInput(
                f"model files at {spec.root} are outside the worker pool's model root {self.model_root}",
                hint="materialise models under WorkerPool.model_root",
            )
        return (op, spec, *args)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self.replaced += 1

    def _call(self, spec: ModelSpec, op: str, args: tuple[Any, ...], timeout: float | None) -> Any:
        wait = self.limits.timeout_s if timeout is None else timeout
        with self._worker(spec.key) as w:
            try:
                w.conn.send(self._request(w, spec, op, args))
                ready = w.conn.poll(wait)
                answer = receive(w.conn) if ready else None
            except (EOFError, OSError, BrokenPipeError):
                raise self._died(w) from None
            except NotPlainData as e:
                raise self._garbled(w, e) from None
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
                w.conn.send(self._request(w, spec, op, args))
                loop.add_reader(fd, _settle_future, readable, True)
                timer = loop.call_later(wait, _settle_future, readable, False)  # lighter than asyncio.wait_for
                try:
                    ready = await readable
                finally:
                    timer.cancel()
                    loop.remove_reader(fd)
                os.set_blocking(fd, True)
                answer = receive(w.conn) if ready else None
            except (EOFError, OSError, BrokenPipeError):
                # Reaping the dead process may wait on it (up to 5 s): on a thread, so the loop serves the others.
                raise (await asyncio.to_thread(self._died, w)) from None
            except NotPlainData as e:
                raise self._garbled(w, e) from None
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

    def _garbled(self, w: _Worker, e: NotPlainData) -> ModelExecutionError:
        self._replace(w)
        return ModelExecutionError(
            f"the model's worker answered with something other than plain data ({e}); it was stopped",
            hint="a model must return arrays or lists of numbers and strings",
        )

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
        if self._own_root:
            shutil.rmtree(self.model_root, ignore_errors=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NotPlainData(Exception):
    """A worker's message named a class or function, or was no pickle at all."""


class _PlainData(pickle.Unpickler):
    """Lists, tuples, dicts, sets, str, bytes, numbers, bools and None, nothing that names a global.

    Every class or function a pickle uses is looked up through `find_class` (extension codes too), so refusing
    them all leaves nothing that a pickle could call: code that took over a worker cannot run code in the
    parent through its answer.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"it names {module}.{name}")


def receive(conn: Connection) -> Any:
    """The next message from a worker, as plain data.

    Raises EOFError or OSError when the worker is gone, NotPlainData when the message is not plain data.
    """
    data = conn.recv_bytes()
    try:
        return _PlainData(io.BytesIO(data)).load()
    except Exception as e:
        raise NotPlainData(str(e)[:200] or type(e).__name__) from None


def _kill_all(workers: weakref.WeakSet[_Worker]) -> None:
    for w in list(workers):
        w.kill()


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
