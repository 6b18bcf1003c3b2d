"""The usage recorder: a request returns once its event is committed, many requests share one commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from aiprov.adapters.db import log
from aiprov.config import Container
from aiprov.core.events import Event
from aiprov.errors import BackendError, InvalidInput
from aiprov.services.usage import INFERENCE, Usage, UsageQueries, UsageRecorder, input_digest

DIGEST = "sha256:" + "ab" * 32


def usage(i: int = 0, actor: str = "bob", rows: list[list[float]] | None = None) -> Usage:
    return Usage(
        actor=actor,
        action=INFERENCE,
        digest=DIGEST,
        model="alice/iris",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        details={"version": 1, "n": i},
        rows=rows if rows is not None else [[float(i), 1.5]],
    )


def checkpoints(c: Container) -> list[int]:
    """Sizes of the signed checkpoints, oldest first (0 for none yet)."""
    with c.db.unit() as u:
        rows = u.conn.exec_driver_sql("SELECT size FROM log_checkpoints ORDER BY size").all()
    return [0] + [int(r[0]) for r in rows]


def log_size(c: Container) -> int:
    with c.db.unit() as u:
        return log.size(u.conn)


@pytest.fixture
def hub(make_container: Callable[..., Container]) -> Container:
    return make_container()


def record_all(recorder: UsageRecorder, usages: list[Usage]) -> None:
    """Record `usages` as that many concurrent requests on one event loop would."""

    async def main() -> None:
        await asyncio.gather(*(recorder.record_async(u) for u in usages))

    asyncio.run(main())


def test_concurrent_requests_share_commits_and_keep_their_order_in_the_log(hub: Container) -> None:
    recorder = hub.new_usage_recorder(batch_size=100)
    before = log_size(hub)
    record_all(recorder, [usage(i) for i in range(250)])
    assert log_size(hub) == before + 250  # every request returned after its event was committed
    assert 3 <= recorder.batches <= 10  # group commit: at most 100 per batch, and not one commit per request
    events = UsageQueries(hub.db).of_user("bob", limit=1000)
    assert [e.details["n"] for e in events] == list(range(249, -1, -1))
    latest = hub.log.latest().checkpoint.size
    for e in events[:5] + events[-5:]:
        assert e.leaf_index is not None
        _, _, event = hub.log.entry(e.leaf_index)
        assert event.details["input_digest"] == input_digest([[float(e.details["n"]), 1.5]])
        proof = hub.log.inclusion(e.leaf_index, latest)
        proof.verify()
    recorder.close()


def test_record_returns_once_the_event_is_committed_and_visible_to_another_connection(hub: Container) -> None:
    recorder = hub.new_usage_recorder()
    for i in range(3):
        recorder.record(usage(i))
        reopened = Container(hub.settings)  # its own engine: sees only what is committed
        try:
            assert len(UsageQueries(reopened.registry.db).of_user("bob")) == i + 1
        finally:
            reopened.close()
    assert recorder.batches == 3 and recorder.pending == 0
    recorder.close()


def test_input_digest_is_sha256_of_the_canonical_rows() -> None:
    import hashlib

    assert input_digest([[5.1, 3, "x"]]) == "sha256:" + hashlib.sha256(b'[[5.1,3,"x"]]').hexdigest()
    assert input_digest([[1.0]]) == input_digest([[1]])  # RFC 8785: the same number is the same bytes


def locked(hub: Container) -> Callable[[], None]:
    """Hold the database's write lock from another connection, as a long write elsewhere would; call to release.

    A writer with the engine's busy timeout (30 s: the recorder's thread) waits meanwhile; one with a short one
    (the event loop's writer) fails its attempts and retries.
    """
    other = sqlite3.connect(hub.settings.home / "registry.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def release() -> None:
        other.execute("COMMIT")
        other.close()

    return release


def in_threads(recorder: UsageRecorder, usages: list[Usage]) -> tuple[list[threading.Thread], list[BaseException]]:
    errors: list[BaseException] = []

    def one(u: Usage) -> None:
        try:
            recorder.record(u)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(u,)) for u in usages]
    for t in threads:
        t.start()
    return threads, errors


def test_close_writes_everything_still_queued_and_is_idempotent(hub: Container) -> None:
    release = locked(hub)
    recorder = hub.new_usage_recorder(batch_size=1000)
    before = log_size(hub)
    threads, errors = in_threads(recorder, [usage(i) for i in range(37)])
    deadline = time.monotonic() + 10
    while recorder.pending < 37 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.pending == 37  # all waiting for a commit
    release()
    recorder.close()
    recorder.close()
    for t in threads:
        t.join()
    assert errors == []
    assert log_size(hub) == before + 37
    assert recorder.pending == 0
    with pytest.raises(BackendError):
        recorder.record(usage())


def test_under_load_a_checkpoint_is_signed_once_an_interval_and_the_newest_covers_the_log(hub: Container) -> None:
    recorder = hub.new_usage_recorder(checkpoint_interval_s=0.25)
    signed_before = len(checkpoints(hub))
    began = time.monotonic()
    i = 0
    while time.monotonic() - began < 1.5:
        recorder.record(usage(i))
        if i % 25 == 0:  # asked for, the newest checkpoint covers everything committed (signed then if need be)
            assert hub.log.latest().checkpoint.size >= log_size(hub)
        i += 1
    signed = len(checkpoints(hub)) - signed_before
    assert recorder.batches >= 50
    assert signed <= 1.5 / 0.25 + 2 + i // 25 + 1  # one an interval, plus the ones `latest` signed on demand
    recorder.close()
    assert checkpoints(hub)[-1] == log_size(hub)  # closing signs over what was left


def test_an_idle_recorder_signs_a_checkpoint_over_what_it_left_unsigned(hub: Container) -> None:
    recorder = hub.new_usage_recorder(checkpoint_interval_s=0.3)
    recorder.record(usage(1))  # the first batch signs (none signed yet)
    assert checkpoints(hub)[-1] == log_size(hub)
    recorder.record(usage(2))  # within the interval: committed, not yet covered by a stored checkpoint
    assert checkpoints(hub)[-1] == log_size(hub) - 1
    deadline = time.monotonic() + 5
    while checkpoints(hub)[-1] < log_size(hub) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoints(hub)[-1] == log_size(hub)
    assert time.monotonic() - deadline + 5 >= 0.2  # it waited for the interval, not signing at once
    recorder.close()


def test_full_queue_pushes_back_then_refuses_instead_of_growing(hub: Container) -> None:
    release = locked(hub)
    recorder = UsageRecorder(hub.db, batch_size=2, max_queued=4, put_timeout_s=0.3)
    threads, errors = in_threads(recorder, [usage(i) for i in range(4)])
    deadline = time.monotonic() + 10
    while recorder.pending < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    with pytest.raises(BackendError, match="not keeping up"):
        recorder.record(usage(99))
    assert time.monotonic() - began >= 0.25  # it waited (back-pressure) before refusing
    release()
    recorder.record(usage(5))  # room again once the writer moves
    for t in threads:
        t.join()
    recorder.close()
    assert errors == [] and recorder.pending == 0
    assert sorted(e.details["n"] for e in UsageQueries(hub.db).of_user("bob")) == [0, 1, 2, 3, 5]


@pytest.mark.parametrize("inline", [True, False], ids=["loop", "thread"])
def test_a_commit_that_does_not_come_in_time_refuses_the_request(hub: Container, inline: bool) -> None:
    release = locked(hub)
    recorder = UsageRecorder(hub.db, commit_timeout_s=0.3, inline=inline)
    began = time.monotonic()
    with pytest.raises(BackendError, match=r"did not commit within 0\.3 s"):
        recorder.record(usage(1))
    assert time.monotonic() - began >= 0.3

    async def one() -> None:
        await recorder.record_async(usage(2))

    began = time.monotonic()
    with pytest.raises(BackendError, match="not acknowledged"):
        asyncio.run(one())
    assert time.monotonic() - began >= 0.3
    release()
    recorder.close()
    # Written later: the log may hold a use that was not answered, never an answer that is not in the log.
    assert sorted(e.details["n"] for e in UsageQueries(hub.db).of_user("bob")) == [1, 2]


@pytest.mark.parametrize("inline", [True, False], ids=["loop", "thread"])
def test_a_database_outage_is_retried_without_losing_events(hub: Container, inline: bool) -> None:
    release = locked(hub)
    threading.Timer(0.3, release).start()  # the write lock comes back after a while
    recorder = hub.new_usage_recorder(batch_size=10, inline=inline)
    began = time.monotonic()
    record_all(recorder, [usage(i) for i in range(5)])
    assert time.monotonic() - began >= 0.25  # answered only once committed, after the outage
    recorder.close()
    assert sorted(e.details["n"] for e in UsageQueries(hub.db).of_user("bob")) == [0, 1, 2, 3, 4]
    assert recorder.dropped == 0


def test_the_loop_writer_never_blocks_its_loop_for_long_while_the_database_is_locked(hub: Container) -> None:
    """While another writer holds the lock, the loop keeps running: its writes give up after 2 ms and retry."""
    release = locked(hub)
    threading.Timer(1.0, release).start()  # a writer that waited for the lock would hold the loop for all of it
    recorder = hub.new_usage_recorder(inline=True)
    gaps: list[float] = []

    async def main() -> None:
        recording = asyncio.ensure_future(recorder.record_async(usage(1)))
        last = time.monotonic()
        while not recording.done():
            await asyncio.sleep(0.001)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        await recording

    asyncio.run(main())
    recorder.close()
    assert len(gaps) > 20 and max(gaps) < 0.5, max(gaps)  # 0.5 s: room for a loaded machine's scheduling
    assert [e.details["n"] for e in UsageQueries(hub.db).of_user("bob")] == [1]


def test_an_event_the_log_cannot_encode_fails_its_request_alone(hub: Container) -> None:
    recorder = hub.new_usage_recorder(batch_size=10)
    results: list[BaseException | None] = []

    async def main() -> None:
        usages = [usage(1), usage(2, rows=[[float("nan")]]), usage(3)]  # canonical JSON has no NaN
        results.extend(await asyncio.gather(*(recorder.record_async(u) for u in usages), return_exceptions=True))

    asyncio.run(main())
    recorder.close()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], InvalidInput)
    assert recorder.dropped == 1
    assert sorted(e.details["n"] for e in UsageQueries(hub.db).of_user("bob")) == [1, 3]


def test_a_batch_is_one_log_append(hub: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = log.append

    def counting(conn, entries):  # type: ignore[no-untyped-def]
        calls.append(len(entries))
        return real(conn, entries)

    monkeypatch.setattr(log, "append", counting)
    with hub.db.unit(write=True) as u:
        first = u.add_events([usage(i).event() for i in range(3)])
    assert calls == [3]
    assert [Event.from_entry(hub.log.entry(first + i)[0]).details["n"] for i in range(3)] == [0, 1, 2]


def test_the_fast_input_digest_of_numbers_is_the_rfc8785_one() -> None:
    import random

    import numpy as np

    from aiprov.core.canonical import canonical_json
    from aiprov.services.usage import _fast_canonical

    rng = random.Random(7)
    values = [0.0, -0.0, 5.0, -7.25, 0.1, 1 / 3, 1e-4, 9.99e-5, 1e15 + 0.5, 1e16, 2.0**53, 1e-7, 3, True]
    for _ in range(20_000):
        v = rng.choice([1, -1]) * 10 ** rng.uniform(-6, 18)
        values.append(float(round(v)) if rng.random() < 0.3 else v)
    fast_hits = 0
    for v in values:
        rows = [[v, 1.5]]
        fast = _fast_canonical(rows, np.asarray(rows))
        if fast is not None:
            fast_hits += 1
            assert fast == canonical_json(rows), v
        assert input_digest(rows, np.asarray(rows)) == input_digest(rows)
    assert fast_hits > len(values) // 2
    ints = [[1, 2, 3], [4, -5, 2**53 - 1]]
    assert _fast_canonical(ints, np.asarray(ints)) == canonical_json(ints)


def test_small_and_large_inputs_take_the_fast_digest_for_the_same_values() -> None:
    """A small input is checked value by value, a large one with numpy: both must accept exactly the same."""
    import random

    import numpy as np

    from aiprov.core.canonical import canonical_json
    from aiprov.services.usage import SMALL_INPUT, _fast_canonical

    rng = random.Random(11)
    values: list[float | int] = [0.0, -0.0, 1e-4, 9.99e-5, 1e16, 1e16 - 2, 5.0, 3, -(2**53) + 1, 2**53, True, False]
    values += [rng.choice([1, -1]) * 10 ** rng.uniform(-6, 18) for _ in range(300)]
    copies = SMALL_INPUT // 2 + 1  # rows of two values: more than SMALL_INPUT in all
    for v in values:
        small, large = [[v, 1.5]], [[v, 1.5]] * copies
        fast_small = _fast_canonical(small, np.asarray(small))
        fast_large = _fast_canonical(large, np.asarray(large))
        assert (fast_small is None) == (fast_large is None), v
        if fast_large is not None:
            assert fast_large == canonical_json(large), v


@pytest.mark.parametrize("inline", [True, False], ids=["loop", "thread"])
def test_announced_events_share_one_commit_with_the_one_queued_first(hub: Container, inline: bool) -> None:
    """The writer waits for predictions still running rather than commit the first answer of a wave alone."""
    recorder = hub.new_usage_recorder(batch_size=10, inline=inline)
    recorder.linger_s = 5.0  # long enough for a loaded machine; the last announced event ends the wait
    recorder.record(usage(0))  # the first batch signs a checkpoint; what follows is the lingering path

    async def main() -> None:
        for _ in range(3):
            recorder.expect()
        first = asyncio.ensure_future(recorder.record_async(usage(1), expected=True))
        await asyncio.sleep(0.0005)  # the rest of the wave "is still in the model"
        await asyncio.gather(first, *(recorder.record_async(usage(i), expected=True) for i in (2, 3)))

    before = recorder.batches
    began = time.monotonic()
    asyncio.run(main())
    assert recorder.batches - before == 1
    assert time.monotonic() - began < 2.5  # not the whole linger: the last one to come sent the batch
    recorder.close()
    assert sorted(e.details["n"] for e in UsageQueries(hub.db).of_user("bob")) == [0, 1, 2, 3]


@pytest.mark.parametrize("inline", [True, False], ids=["loop", "thread"])
def test_a_lone_request_never_waits_for_the_linger(hub: Container, inline: bool) -> None:
    recorder = hub.new_usage_recorder(inline=inline)
    recorder.linger_s = 5.0  # were it to wait, this test would take seconds
    recorder.record(usage(0))

    async def one(i: int) -> float:
        recorder.expect()
        began = time.monotonic()
        await recorder.record_async(usage(i), expected=True)
        return time.monotonic() - began

    waits = [asyncio.run(one(i)) for i in range(1, 6)]
    recorder.close()
    assert max(waits) < 1.0, waits


def test_an_announced_event_that_never_comes_delays_a_batch_by_the_linger_at_most(hub: Container) -> None:
    recorder = hub.new_usage_recorder(inline=False)
    recorder.linger_s = 0.2
    recorder.record(usage(0))
    recorder.expect()  # a prediction that will fail, and whose request forgets to withdraw it
    began = time.monotonic()
    recorder.record(usage(1))
    waited = time.monotonic() - began
    assert 0.2 <= waited < 2.0
    recorder.unexpect()  # withdrawn: the next batch goes at once
    began = time.monotonic()
    recorder.record(usage(2))
    assert time.monotonic() - began < 0.2
    recorder.close()


def test_on_the_loop_an_announced_event_that_never_comes_delays_a_batch_by_the_linger_at_most(
    hub: Container,
) -> None:
    recorder = hub.new_usage_recorder(inline=True)
    recorder.linger_s = 0.2

    async def main() -> tuple[float, float]:
        await recorder.record_async(usage(0))
        recorder.expect()  # a prediction that will fail, and whose request forgets to withdraw it
        began = time.monotonic()
        await recorder.record_async(usage(1))
        waited = time.monotonic() - began
        recorder.unexpect()
        began = time.monotonic()
        await recorder.record_async(usage(2))
        return waited, time.monotonic() - began

    waited, then = asyncio.run(main())
    recorder.close()
    assert 0.2 <= waited < 2.0
    assert then < 0.2


def test_withdrawing_the_last_announced_event_lets_the_writer_go(hub: Container) -> None:
    recorder = hub.new_usage_recorder(inline=False)
    recorder.linger_s = 5.0
    recorder.record(usage(0))
    recorder.expect()
    threading.Timer(0.1, recorder.unexpect).start()  # its prediction failed
    began = time.monotonic()
    recorder.record(usage(1))
    assert time.monotonic() - began < 2.0
    recorder.close()


@pytest.mark.postgres
def test_the_event_writer_reconnects_after_its_connection_is_killed(
    make_container: Callable[..., Container], postgres_url: str
) -> None:
    """A real lost connection (the server ends the backend): one batch fails as BackendError, the next commits."""
    from sqlalchemy import create_engine, text

    hub = make_container(postgres_url)
    hub.registry  # noqa: B018 - the schema
    writer = hub.db.event_writer()
    writer.append([usage(1).event()])
    pid = writer._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()  # type: ignore[union-attr]
    writer._conn.rollback()  # type: ignore[union-attr]
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    admin.dispose()
    with pytest.raises(BackendError, match="database error"):
        writer.append([usage(2).event()])
    writer.append([usage(3).event()])
    writer.close()
    assert sorted(e.details["n"] for e in UsageQueries(hub.db).of_user("bob")) == [1, 3]
    assert log_size(hub) == 2
