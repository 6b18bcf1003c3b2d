"""Real worker processes: misbehaving models give clear errors, their workers are replaced, the pool goes on."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.sandbox.misbehaving import LOADER

from aiprov.errors import InvalidInput
from aiprov.sandbox import Limits, ModelExecutionError, ModelResourceError, ModelSpec, ModelTimeout, WorkerPool
from aiprov.sandbox.pool import worker_environment

LIMITS = Limits(memory_bytes=1024 * 2**20, cpu_seconds=2, timeout_s=3.0)

MakeSpec = Callable[..., ModelSpec]


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[WorkerPool]:
    with WorkerPool(1, LIMITS, loaders={"misbehaving": LOADER}, model_root=tmp_path) as p:
        yield p


@pytest.fixture
def make_spec(tmp_path: Path) -> MakeSpec:
    def make(key: str = "good", **plan: str) -> ModelSpec:
        (tmp_path / key).write_text(json.dumps(plan))
        return ModelSpec(key=key, root=str(tmp_path), entry=key, format="misbehaving")

    return make


def answer(pool: WorkerPool, spec: ModelSpec) -> tuple[int, int]:
    """(worker pid, models that worker loaded) for one request."""
    pid, loads = pool.predict(spec, [[0.0]]).predictions[0]
    return pid, loads


@pytest.mark.parametrize("stage", ["load", "predict"])
def test_model_that_raises_gives_its_error_and_keeps_the_worker(
    pool: WorkerPool, make_spec: MakeSpec, stage: str
) -> None:
    pid, _ = answer(pool, make_spec())
    with pytest.raises(ModelExecutionError, match="RuntimeError: this model is broken on purpose") as e:
        pool.predict(make_spec("bad", **{stage: "raise"}), [[0.0]])
    assert type(e.value) is ModelExecutionError
    assert ("loading" if stage == "load" else "running") in e.value.message
    assert answer(pool, make_spec())[0] == pid
    assert pool.replaced == 0


@pytest.mark.parametrize(
    ("stage", "action", "error", "message"),
    [
        ("predict", "hang", ModelTimeout, "did not answer within 3 s"),
        ("load", "hang", ModelTimeout, "did not answer within 3 s"),
        ("load", "spin", ModelResourceError, "exceeded its CPU time limit"),
        ("load", "alloc", ModelResourceError, "ran out of memory"),
        ("predict", "alloc", ModelResourceError, "ran out of memory"),
        ("predict", "segv", ModelResourceError, "segmentation fault"),
        ("load", "exit", ModelResourceError, "exited with status 3"),
    ],
)
def test_model_that_hangs_or_dies_is_killed_and_its_worker_replaced(
    make_spec: MakeSpec, stage: str, action: str, error: type[Exception], message: str, tmp_path: Path
) -> None:
    # The CPU-time case gets a wall-clock limit it cannot reach first, however loaded the machine is.
    limits = Limits(memory_bytes=LIMITS.memory_bytes, cpu_seconds=1, timeout_s=120.0) if action == "spin" else LIMITS
    with WorkerPool(1, limits, loaders={"misbehaving": LOADER}, model_root=tmp_path) as pool:
        good = make_spec()
        pid, _ = answer(pool, good)
        with pytest.raises(error, match=message):
            pool.predict(make_spec("bad", **{stage: action}), [[0.0]])
        assert pool.replaced == 1
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the old worker is gone, not left running
        new_pid, loads = answer(pool, good)
        assert new_pid != pid and loads == 1


def test_loaded_models_stay_warm_per_worker(pool: WorkerPool, make_spec: MakeSpec) -> None:
    a, b = make_spec("a"), make_spec("b")
    assert answer(pool, a)[1] == 1
    assert answer(pool, a)[1] == 1  # not loaded again
    assert answer(pool, b)[1] == 2
    assert answer(pool, a)[1] == 2


def test_a_worker_is_sent_a_spec_until_it_holds_the_model_then_its_key(make_spec: MakeSpec, tmp_path: Path) -> None:
    a, b = make_spec("a"), make_spec("b")
    with WorkerPool(1, LIMITS, loaders={"misbehaving": LOADER}, warm_models=1, model_root=tmp_path) as pool:
        answer(pool, a)
        worker = pool._idle[0]
        sent: list[object] = []
        send = worker.conn.send

        def spy(message: tuple[object, ...]) -> None:
            if message[0] == "run":
                sent.append(message[1])
            send(message)

        worker.conn.send = spy  # type: ignore[method-assign]
        answer(pool, a)
        answer(pool, b)  # evicts a (one warm model per worker)
        answer(pool, a)
        assert sent == ["a", b, a]


def test_a_key_the_worker_does_not_hold_is_a_load_error() -> None:
    from aiprov.sandbox.worker import _Models

    with pytest.raises(LookupError, match="model sha256:ab is not loaded in this worker"):
        _Models({}, 1).get("sha256:ab")


def test_requests_prefer_the_worker_that_has_the_model_warm(make_spec: MakeSpec, tmp_path: Path) -> None:
    a, b = make_spec("a", predict="slow"), make_spec("b", predict="slow")
    with (
        WorkerPool(2, LIMITS, loaders={"misbehaving": LOADER}, model_root=tmp_path) as pool,
        ThreadPoolExecutor(2) as threads,
    ):
        first_a, first_b = threads.map(lambda spec: answer(pool, spec), [a, b])  # both busy: two workers
        assert first_a[0] != first_b[0]
        for _ in range(3):
            assert answer(pool, a) == first_a and answer(pool, b) == first_b


def test_unknown_format_is_a_load_error(pool: WorkerPool, tmp_path: Path) -> None:
    (tmp_path / "m").write_text("{}")
    with pytest.raises(ModelExecutionError, match="no loader for format 'nope'"):
        pool.predict(ModelSpec("k", str(tmp_path), "m", "nope"), [[0.0]])


def test_workers_are_fresh_isolated_interpreters_never_forks_of_the_caller(
    pool: WorkerPool, make_spec: MakeSpec
) -> None:
    pid, _ = answer(pool, make_spec())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[:3] == [os.fsencode(sys.executable), b"-I", b"-c"]


def test_a_spec_outside_the_model_root_is_refused_before_any_worker_sees_it(
    pool: WorkerPool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "m").write_text("{}")
    with pytest.raises(InvalidInput, match="outside the worker pool's model root"):
        pool.predict(ModelSpec("k", str(elsewhere), "m", "misbehaving"), [[0.0]])
    assert pool.replaced == 0


def test_closed_pool_refuses_requests(make_spec: MakeSpec, tmp_path: Path) -> None:
    pool = WorkerPool(1, LIMITS, loaders={"misbehaving": LOADER}, model_root=tmp_path)
    pid, _ = answer(pool, make_spec())
    pool.close()
    with pytest.raises(InvalidInput, match="closed"):
        pool.predict(make_spec(), [[0.0]])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_workers_do_not_see_the_callers_secrets(
    make_spec: MakeSpec, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIPROV_DATABASE_URL", "postgresql://hub:s3cret@db/hub")
    monkeypatch.setenv("AIPROV_TOKEN", "aiprov_x_secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with WorkerPool(1, LIMITS, loaders={"misbehaving": LOADER}, model_root=tmp_path) as pool:
        names = pool.predict(make_spec("env", predict="env"), [[0.0]]).predictions[0]
    assert set(names) == set(worker_environment(tmp_path))  # written by the pool; nothing of ours
