"""Inference over HTTP: predictions equal the estimator's own, each call is logged as usage with a verifying
inclusion proof, bad input and misbehaving models are clear problems, and a clean shutdown loses no usage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from apitools import FEATURES, PREDICT, ROWS, Hub, Server, assert_problem, bearer, push
from fastapi.testclient import TestClient

from aiprov.api import create_app
from aiprov.config import Container, Settings
from aiprov.core import merkle
from aiprov.core.events import Event
from aiprov.errors import InvalidInput
from aiprov.sandbox import Limits, SandboxedModels, WorkerPool
from aiprov.services.usage import UsageQueries, input_digest


@pytest.fixture
def served(hub: Hub, iris: tuple[Path, Any]) -> Iterator[tuple[TestClient, Any, Any]]:
    """A TestClient (lifespan on, sending alice's token) over a hub where alice pushed the Iris model; yields
    (client, version, model)."""
    version = push(hub.container, iris[0], "alice/iris").version
    app = create_app(hub.container)
    with TestClient(app, raise_server_exceptions=False, headers=bearer(hub.tokens["alice"])) as client:
        yield client, version, iris[1]


def test_predictions_equal_the_estimators_own(served: tuple[TestClient, Any, Any]) -> None:
    client, version, model = served
    expected = model.predict(np.asarray(ROWS)).tolist()
    r = client.post(PREDICT, json={"inputs": ROWS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == expected
    assert "probabilities" not in body
    assert body["model"] == {"name": "alice/iris", "version": 1, "digest": str(version.manifest.digest)}

    r = client.post(PREDICT, json={"inputs": ROWS, "proba": True})
    assert np.allclose(r.json()["probabilities"], model.predict_proba(np.asarray(ROWS)))
    assert r.json()["classes"] == model.classes_.tolist()
    r = client.post(PREDICT + "?proba=true", json={"inputs": ROWS})
    assert "probabilities" in r.json()

    records = [dict(zip(reversed(FEATURES), reversed(row), strict=True)) for row in ROWS]  # order does not matter
    assert client.post(PREDICT, json={"records": records}).json()["predictions"] == expected
    digest = str(version.manifest.digest)
    for path in (
        "/api/v1/models/alice/iris@1/predict",
        PREDICT + "?version=1",
        f"/infer/{digest}",
        f"/infer/{digest[7:19]}",
    ):
        r = client.post(path, json={"inputs": ROWS})
        assert r.status_code == 200, (path, r.text)
        assert r.json()["predictions"] == expected


def test_usage_shows_each_call_and_each_is_in_the_log_with_a_verifying_proof(
    served: tuple[TestClient, Any, Any], hub: Hub
) -> None:
    client, version, _ = served
    digest = str(version.manifest.digest)
    calls = [(hub.tokens["bob"], ROWS[:1]), (hub.tokens["alice"], ROWS[1:3]), (hub.tokens["bob"], ROWS)]
    for token, rows in calls:
        r = client.post(PREDICT, json={"inputs": rows}, headers=bearer(token))
        assert r.status_code == 200, r.text
    # No flush: an answered prediction is already in the log.
    usage = client.get("/api/v1/models/alice/iris/usage").json()
    assert [(u["actor"], u["action"], u["digest"]) for u in usage] == [
        ("bob", "inference", digest),
        ("alice", "inference", digest),
        ("bob", "inference", digest),
    ]
    assert [u["details"]["input_digest"] for u in usage] == [input_digest(rows) for _, rows in reversed(calls)]
    assert [u["details"]["rows"] for u in usage] == [4, 2, 1]
    bob = client.get("/api/v1/users/bob/usage").json()
    assert [u["details"]["rows"] for u in bob] == [4, 1]
    assert client.get("/api/v1/models/alice/iris/usage?version=1&action=inference").json() == usage

    note = client.get("/api/v1/log/checkpoint").text
    size = int(note.splitlines()[1])
    root = bytes.fromhex(client.get("/api/v1/log/proof/consistency", params={"from": size}).json()["root2"])
    for u in usage:
        entry = client.get(f"/api/v1/log/entries/{u['leaf_index']}").json()
        assert entry["event"]["action"] == "inference" and entry["event"]["subject"] == digest
        assert entry["event"]["details"]["input_digest"] == u["details"]["input_digest"]
        proof = client.get("/api/v1/log/proof/inclusion", params={"index": u["leaf_index"], "size": size}).json()
        hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        merkle.verify_inclusion(bytes.fromhex(entry["leaf_hash"]), u["leaf_index"], size, hashes, root)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff{}", "not valid UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "exactly one of"),
        (b'{"inputs": [[1,2,3,4]], "records": []}', "exactly one of"),
        (b'{"inputs": []}', "non-empty list"),
        (b'{"inputs": [1, 2]}', "inputs[0] is not a list"),
        (b'{"inputs": [[1, 2]]}', "expected the model's 4 features"),
        (b'{"inputs": [[1, 2, 3, 4], [1, 2, 3]]}', "inputs[1] has 3 values"),
        (b'{"inputs": [[1, 2, 3, [4]]]}', "inputs[0][3] is a list"),
        (b'{"inputs": [[1, 2, 3, 9007199254740993]]}', "beyond 2**53"),
        (b'{"inputs": [[1, 2, 3, 4]], "proba": "yes"}', "proba"),
        (b'{"inputs": [[1, 2, 3, 4]], "extra": 1}', "unknown member"),
        (b'{"records": [{"sepal length (cm)": 1}]}', "missing"),
        (b'{"records": [[1, 2, 3, 4]]}', "records[0] is not an object"),
        # the rules of every JSON document (core/jsonvalues.py), in the words every other route uses
        (b'{"inputs": [[1, 2, 3, NaN]]}', "NaN, which is not a JSON number"),
        (b'{"inputs": [[1, 2, 3, -Infinity]]}', "-Infinity, which is not a JSON number"),
        (b'{"inputs": [[1, 2, 3, 1e400]]}', "beyond the largest finite one"),
        (b'{"inputs": [[1, 2, 3, "\\ud800"]]}', "lone surrogate"),
        (b'{"records": [{"\\udc00": 1}]}', "lone surrogate"),
        (b'{"inputs": [[1, 2, 3, ' + b"1" * 30 + b"]]}", "beyond ±(2**53 - 1)"),
        (b'{"inputs": [[1, 2, 3, -' + b"9" * 5000 + b"]]}", "beyond ±(2**53 - 1)"),
        (b'{"inputs": ' + b"[" * 900 + b"]" * 900 + b"}", "inputs[0] has 1 values"),  # the shape refuses it
        (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested more than 64 levels"),
    ],
)
def test_bad_bodies_are_clear_422_problems(served: tuple[TestClient, Any, Any], body: bytes, detail: str) -> None:
    client, _, _ = served
    r = client.post(PREDICT, content=body, headers={"content-type": "application/json"})
    assert detail in assert_problem(r, 422)["detail"]


def test_honest_numbers_at_the_edges_are_predicted(served: tuple[TestClient, Any, Any]) -> None:
    client, _, _ = served
    for row in (b"[1e20, 3.5, -1.7976931348623157e308, 5e-324]", b"[9007199254740991, -9007199254740991, 0, -0.0]"):
        r = client.post(PREDICT, content=b'{"inputs": [' + row + b"]}", headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": [[1, NaN]]}',
        b'{"inputs": [["\\ud800"]]}',
        b'{"inputs": [[1e400]]}',
        b'{"inputs": [[' + b"1" * 30 + b"]]}",
        b"[" * 100_000,
        b'{"inputs": [[1e20, 2]]}',
        b'{"inputs": [[5.1, 3.5]]}',
    ],
)
def test_a_body_is_read_alike_with_and_without_orjson(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiprov.services import inference

    def outcome() -> Any:
        try:
            return inference.model_input(inference.input_rows(inference.parse_body(body), None), body).tolist()
        except InvalidInput as e:
            return e.message

    with_orjson = outcome()
    monkeypatch.setattr(inference, "_loads", json.loads)
    assert outcome() == with_orjson


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), -float("inf"), 2**53, -(2**53), 2.0**53, 1e300, -0.0, 7, 5.5, True, "x", None]
)
def test_small_and_large_inputs_are_checked_alike(value: Any) -> None:
    """A small input is checked value by value, a large one with numpy: they must refuse and pass the same."""
    import numpy as np

    from aiprov.services.inference import model_input
    from aiprov.services.usage import SMALL_INPUT

    def outcome(rows: list[list[Any]]) -> Any:
        try:
            x = model_input(rows)
        except InvalidInput:
            return "refused"
        return ("array", x[:1].tolist()) if isinstance(x, np.ndarray) else ("rows", x[:1])

    small = [[value, 1.5]]
    assert outcome(small) == outcome(small * SMALL_INPUT)


def test_unknown_model_or_version_is_a_404(served: tuple[TestClient, Any, Any]) -> None:
    client, _, _ = served
    assert_problem(client.post("/api/v1/models/alice/nope/predict", json={"inputs": ROWS}), 404)
    assert_problem(client.post(PREDICT + "?version=7", json={"inputs": ROWS}), 404)
    assert_problem(client.post("/infer/sha256:" + "0" * 64, json={"inputs": ROWS}), 404)
    assert_problem(client.get("/api/v1/models/alice/nope/usage"), 404)


def test_a_hanging_or_crashing_model_is_a_clear_problem_and_the_next_request_works(
    hub: Hub, iris: tuple[Path, Any]
) -> None:
    from misbehaving_sklearn import CRASH, HANG, LOADER

    push(hub.container, iris[0], "alice/iris")
    pool = WorkerPool(1, Limits(timeout_s=5.0, cpu_seconds=30), loaders={"joblib": LOADER})
    hub.container.__dict__["models"] = SandboxedModels(hub.container.blobs, pool)
    hub.container.settings.worker_timeout_s = 5.0
    expected = iris[1].predict(np.asarray(ROWS)).tolist()
    app = create_app(hub.container)
    with TestClient(app, raise_server_exceptions=False, headers=bearer(hub.tokens["alice"])) as client:
        assert client.post(PREDICT, json={"inputs": ROWS}).json()["predictions"] == expected
        hung = assert_problem(client.post(PREDICT, json={"inputs": [[HANG, 0, 0, 0]]}), 422)
        assert hung["title"] == "model timed out" and "within 5 s" in hung["detail"]
        assert client.post(PREDICT, json={"inputs": ROWS}).json()["predictions"] == expected
        crashed = assert_problem(client.post(PREDICT, json={"inputs": [[CRASH, 0, 0, 0]]}), 422)
        assert crashed["title"] == "model exceeded its limits" and "exited with status 3" in crashed["detail"]
        assert client.post(PREDICT, json={"inputs": ROWS}).json()["predictions"] == expected
    assert pool.replaced == 2


def test_predicting_needs_a_token_with_the_write_scope(served: tuple[TestClient, Any, Any], hub: Hub) -> None:
    client, version, _ = served
    reader = hub.container.accounts.add_user("carol", scopes=["read"]).token
    anonymous_client = TestClient(client.app, raise_server_exceptions=False)
    for path in (PREDICT, f"/infer/{version.manifest.digest}"):
        anonymous = assert_problem(anonymous_client.post(path, json={"inputs": ROWS}), 401)
        assert "predicting needs an API token" in anonymous["detail"]
        read_only = assert_problem(client.post(path, json={"inputs": ROWS}, headers=bearer(reader)), 403)
        assert "no write scope" in read_only["detail"]
        assert client.post(path, json={"inputs": ROWS}).status_code == 200  # alice: read and write
    assert {u.actor for u in UsageQueries(hub.container.db).of_model("alice/iris")} == {"alice"}


def test_a_revoked_token_is_refused_within_the_token_cache_bound(hub: Hub, iris: tuple[Path, Any]) -> None:
    """Another process revokes the token (its own container): the server refuses it within `token_cache_s`."""
    push(hub.container, iris[0], "alice/iris")
    made = hub.container.accounts.add_token("alice")
    hub.container.accounts.cache_s = 2.0  # AIPROV_TOKEN_CACHE_S=2
    elsewhere = Container(hub.container.settings.model_copy(update={"actor": "alice"}))
    app = create_app(hub.container)
    warm = hub.container.accounts.add_token("alice")
    with TestClient(app, raise_server_exceptions=False, headers=bearer(made.token)) as client:
        try:
            # Start the model worker first: a cold start could outlast the cache bound on a loaded machine.
            assert client.post(PREDICT, json={"inputs": ROWS}, headers=bearer(warm.token)).status_code == 200
            assert client.post(PREDICT, json={"inputs": ROWS}).status_code == 200  # checked, now cached
            elsewhere.accounts.revoke(made.token_id)
        finally:
            elsewhere.close()
        revoked_at = time.monotonic()
        statuses = []
        while time.monotonic() - revoked_at < 5.0:
            statuses.append(client.post(PREDICT, json={"inputs": ROWS}).status_code)
            if statuses[-1] == 401:
                break
        refused_after = time.monotonic() - revoked_at
    assert statuses[-1] == 401 and refused_after <= 2.0 + 0.5, (statuses, refused_after)
    assert statuses[0] == 200  # within the bound the cached check still answers (no database round trip)


def test_a_token_revoked_through_the_server_is_refused_at_once(served: tuple[TestClient, Any, Any], hub: Hub) -> None:
    client, _, _ = served
    made = hub.container.accounts.add_token("bob")
    assert client.post(PREDICT, json={"inputs": ROWS}, headers=bearer(made.token)).status_code == 200
    revoke = client.delete(f"/api/v1/tokens/{made.token_id}", headers=bearer(made.token))
    assert revoke.status_code == 200, revoke.text
    assert_problem(client.post(PREDICT, json={"inputs": ROWS}, headers=bearer(made.token)), 401)


def test_served_predict_and_usage_end_to_end(make_server: Any, iris: tuple[Path, Any]) -> None:
    """A real `aiprov serve`: predict over HTTP; each answered call is already in the log, with a verifying proof."""
    server: Server = make_server()
    alice = server.add_user("alice")
    local = Container(Settings(home=server.home, actor="alice"))
    version = push(local, iris[0], "alice/iris").version
    digest = str(version.manifest.digest)
    client = server.client(alice)
    expected = iris[1].predict(np.asarray(ROWS)).tolist()
    for rows in (ROWS, ROWS[:2]):
        r = client.post(PREDICT, json={"inputs": rows})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected[: len(rows)]
    record = {"records": [dict(zip(FEATURES, ROWS[0], strict=True))]}
    r = httpx.post(f"{server.base_url}/infer/{digest}", json=record, headers=bearer(alice))
    assert r.json()["predictions"] == expected[:1]
    assert [u["details"]["rows"] for u in client.get("/api/v1/models/alice/iris/usage").json()] == [1, 2, 4]
    server.stop()
    assert "Application shutdown complete" in server.log_text()
    try:
        usage = UsageQueries(local.registry.db).of_model("alice/iris")
        assert [(u.actor, u.details["rows"]) for u in usage] == [("alice", 1), ("alice", 2), ("alice", 4)]
        checkpoint = local.log.latest().checkpoint
        for u in usage:
            assert u.leaf_index is not None
            data, _, event = local.log.entry(u.leaf_index)
            assert Event.from_entry(data) == event and event.subject == digest
            local.log.inclusion(u.leaf_index, checkpoint.size).verify()
    finally:
        local.close()


def test_moving_an_alias_redirects_predictions_at_once(
    served: tuple[TestClient, Any, Any], hub: Hub, tmp_path: Path
) -> None:
    import joblib
    from sklearn.dummy import DummyClassifier

    client, _, model = served
    constant = DummyClassifier(strategy="constant", constant=2).fit([[0.0] * 4, [1.0] * 4], [1, 2])
    (tmp_path / "v2").mkdir()
    joblib.dump(constant, tmp_path / "v2" / "model.joblib")
    push(hub.container, tmp_path / "v2", "alice/iris")
    alias = "/api/v1/models/alice/iris/aliases/prod"
    headers = bearer(hub.tokens["alice"])
    assert client.put(alias, json={"version": "1"}, headers=headers).status_code == 200
    by_alias = PREDICT + "?version=prod"
    assert client.post(by_alias, json={"inputs": ROWS}).json()["predictions"] == model.predict(ROWS).tolist()
    assert client.put(alias, json={"version": "2"}, headers=headers).status_code == 200
    assert client.post(by_alias, json={"inputs": ROWS}).json()["predictions"] == [2] * len(ROWS)


def test_concurrent_predictions_are_batched_and_each_gets_its_own_answer(
    served: tuple[TestClient, Any, Any],
) -> None:
    """32 concurrent requests of different rows against one real worker: each answer equals the estimator's own
    for its rows, each request is its own usage event, and the worker made fewer calls than there were requests."""
    import concurrent.futures

    client, _, model = served
    x = np.random.default_rng(0).uniform(0.1, 8.0, size=(32 * 3, 4)).round(2)
    bodies = [x[3 * i : 3 * i + 1 + i % 3].tolist() for i in range(32)]
    client.post(PREDICT, json={"inputs": bodies[0]})  # the model is loaded and warm

    def call(i: int) -> Any:
        r = client.post(PREDICT, json={"inputs": bodies[i], "proba": True})
        assert r.status_code == 200, r.text
        return r.json()

    with concurrent.futures.ThreadPoolExecutor(16) as threads:
        answers = list(threads.map(call, range(32)))
    for body, answer in zip(bodies, answers, strict=True):
        assert answer["predictions"] == model.predict(np.asarray(body)).tolist()
        np.testing.assert_allclose(answer["probabilities"], model.predict_proba(np.asarray(body)))
    batcher = client.app.state.container.inference.batcher  # type: ignore[attr-defined]
    assert batcher.batched > 0 and batcher.calls < 33, (batcher.calls, batcher.batched)
    usage = UsageQueries(client.app.state.container.db).of_model("alice/iris")  # type: ignore[attr-defined]
    assert len(usage) == 33  # the warm-up and the 32, each its own event with its own input digest
    assert {input_digest(b) for b in bodies} <= {u.details["input_digest"] for u in usage}


def test_concurrent_requests_for_an_expired_reference_resolve_it_once(hub: Hub, iris: tuple[Path, Any]) -> None:
    """16 requests in flight when the cached reference expires share one database resolution, not 16."""
    import asyncio

    push(hub.container, iris[0], "alice/iris")
    service = hub.container.inference
    calls: list[str] = []
    resolve = service.resolve

    def counting(ref: str) -> Any:
        calls.append(ref)
        time.sleep(0.05)  # a slow database: every request arrives while the first resolution runs
        return resolve(ref)

    service.resolve = counting  # type: ignore[method-assign]
    body = json.dumps({"inputs": ROWS[:1]}).encode()

    async def wave() -> list[Any]:
        return await asyncio.gather(*(service.predict_async("alice/iris", body, actor="bob") for _ in range(16)))

    first = asyncio.run(wave())
    assert calls == ["alice/iris"]
    service.forget()  # expired: the next wave resolves again, once
    second = asyncio.run(wave())
    assert calls == ["alice/iris", "alice/iris"]
    assert {r.prediction.predictions[0] for r in first + second} == {int(iris[1].predict(np.asarray(ROWS[:1]))[0])}
