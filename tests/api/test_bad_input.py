"""Bad input never breaks the hub: each input of issue #14 is a 4xx problem that names the rule, stores nothing,
leaks no server path, and leaves the client's keep-alive connection serving the next request.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from apitools import Hub, Server, assert_problem, bearer, free_port, push
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aiprov.api import create_app
from aiprov.errors import InvalidInput
from aiprov.services.registry import PushRequest

WEIGHTS = b"weights"
SHA = hashlib.sha256(WEIGHTS).hexdigest()
FILES = [{"path": "w.bin", "size": len(WEIGHTS), "sha256": SHA}]

BAD_VERSIONS = ["99999999999999999999999", "9" * 5000, "²", "\u0661", "0", "2147483648"]


@pytest.fixture
def model(hub: Hub, tmp_path: Path) -> str:
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "w.bin").write_bytes(WEIGHTS)
    push(hub.container, directory, "alice/m")
    return "alice/m"


def _problem_without_internals(response: httpx.Response, status: int, hub: Hub) -> dict[str, Any]:
    body = assert_problem(response, status)
    assert str(hub.container.settings.home) not in response.text
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_versions_that_are_not_bounded_ascii_numbers_are_422_on_every_route(
    client: TestClient, hub: Hub, model: str, version: str
) -> None:
    alice = bearer(hub.tokens["alice"])
    requests = [
        client.get(f"/api/v1/versions/{model}@{version}"),
        client.get(f"/api/v1/models/{model}/versions/{version}/files/w.bin"),
        client.get(f"/api/v1/models/{model}/evaluations", params={"version": version}),
        client.post(f"/api/v1/models/{model}/evaluations", params={"version": version}, json={"benchmark": "iris"}),
        client.put(f"/api/v1/models/{model}/aliases/prod", json={"version": version}, headers=alice),
        client.post(f"/api/v1/models/{model}/predict", params={"version": version}, json={"inputs": [[1]]}),
    ]
    for r in requests:
        assert r.status_code in (401, 422), (r.request.url, r.text)
        _problem_without_internals(r, r.status_code, hub)
    assert requests[0].status_code == 422 and len(requests[0].json()["detail"]) < 200


def test_an_arabic_indic_one_is_not_version_1(client: TestClient, model: str) -> None:
    assert client.get(f"/api/v1/versions/{model}@1").status_code == 200
    assert client.get(f"/api/v1/versions/{model}@\u0661").status_code == 422


def test_huge_range_values_are_answered_as_rfc_9110_reads_them(client: TestClient, hub: Hub, model: str) -> None:
    url = f"/api/v1/blobs/sha256:{SHA}"
    huge = "9" * 5000
    assert _problem_without_internals(client.get(url, headers={"Range": f"bytes={huge}-"}), 416, hub)
    whole = client.get(url, headers={"Range": f"bytes=-{huge}"})
    assert whole.status_code == 206 and whole.content == WEIGHTS
    part = client.get(url, headers={"Range": f"bytes=1-{huge}"})
    assert part.status_code == 206 and part.content == WEIGHTS[1:]
    # Digits of other scripts are not digits of a byte range: the header is ignored (RFC 9110 allows it).
    assert client.get(url, headers={"Range": "bytes=²-".encode("latin-1")}).status_code == 200


def test_huge_content_range_values_are_4xx_and_keep_nothing(client: TestClient, hub: Hub) -> None:
    alice = bearer(hub.tokens["alice"])
    digest = f"sha256:{hashlib.sha256(b'x').hexdigest()}"
    huge = "9" * 5000
    for header in (f"bytes 0-{huge}/{huge}", f"bytes {huge}-{huge}/*", f"bytes 0-0/{huge}"):
        r = client.put(f"/api/v1/blobs/{digest}", content=b"x", headers={**alice, "Content-Range": header})
        assert 400 <= r.status_code < 500, r.text
        _problem_without_internals(r, r.status_code, hub)
    r = client.put(f"/api/v1/blobs/{digest}", params={"offset": huge}, content=b"x", headers=alice)
    _problem_without_internals(r, 422, hub)
    assert client.head(f"/api/v1/blobs/{digest}", headers=alice).status_code == 404


@pytest.mark.parametrize(
    ("fragment", "rule"),
    [
        ('"description": "\\ud800"', "lone surrogate"),
        ('"metadata": {"a": NaN}', "NaN"),
        ('"metadata": {"a": Infinity}', "Infinity"),
        ('"metadata": {"a": -Infinity}', "Infinity"),
        ('"metadata": {"a": 1e400}', "finite"),
        ('"metadata": {"a": 9007199254740993}', "2**53"),
        ('"metadata": {"a": ' + "[" * 900 + "]" * 900 + "}", "nested"),
        ('"description": "\\u001b[2J"', "control character"),
        ('"license": "MIT\\nor not"', "control character"),
        ('"params": {"lr": "0.1\\u001b]0;owned\\u0007"}', "control character"),
    ],
)
def test_bodies_json_cannot_carry_exactly_are_422_and_commit_nothing(
    client: TestClient, hub: Hub, model: str, fragment: str, rule: str
) -> None:
    body = f'{{"files": {json.dumps(FILES)}, {fragment}}}'
    r = client.post(
        "/api/v1/models/alice/x/versions",
        content=body.encode(),
        headers={**bearer(hub.tokens["alice"]), "content-type": "application/json"},
    )
    assert rule in _problem_without_internals(r, 422, hub)["detail"]
    assert client.get("/api/v1/models/alice/x").status_code == 404


def test_honest_metadata_at_the_limits_is_committed_and_read_back(client: TestClient, hub: Hub, model: str) -> None:
    metadata = {
        "accuracy": 0.97,
        "edges": [9007199254740991, -9007199254740991, 5e-324, 1.7976931348623157e308],
        "nested": json.loads("[" * 62 + "]" * 62),
        "text": "Grüße 日本語 \U0001f600",
    }
    body = {"files": FILES, "description": "line one\r\n\tline two", "metadata": metadata}
    r = client.post("/api/v1/models/alice/x/versions", json=body, headers=bearer(hub.tokens["alice"]))
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/models/alice/x").json()["lineage"]["metadata"] == metadata


def test_committing_the_same_bytes_again_answers_the_same_version(client: TestClient, hub: Hub, model: str) -> None:
    alice = bearer(hub.tokens["alice"])
    body = {"files": FILES, "metadata": {"run": 1.5}}
    first = client.post("/api/v1/models/alice/x/versions", json=body, headers=alice)
    again = client.post("/api/v1/models/alice/x/versions", json=body, headers=alice)
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json()["version"] == first.json()["version"] and again.json()["deduplicated"] is True


@pytest.mark.parametrize(
    "path",
    ["a" * 300, "a\nb.json", "esc\x1b[31m.bin", "bidi\u202etxt.exe", "/".join(["d" * 255] * 17), "../up"],
)
def test_file_paths_a_file_system_or_terminal_would_mangle_are_422(
    client: TestClient, hub: Hub, model: str, path: str
) -> None:
    body = {"files": [{**FILES[0], "path": path}]}
    r = client.post("/api/v1/models/alice/x/versions", json=body, headers=bearer(hub.tokens["alice"]))
    detail = _problem_without_internals(r, 422, hub)["detail"]
    assert "quarantine" not in detail and "\n" not in detail and "\x1b" not in detail
    assert client.get("/api/v1/models/alice/x").status_code == 404


def test_paths_that_differ_only_by_case_or_normalisation_are_422(client: TestClient, hub: Hub, model: str) -> None:
    for a, b in (("Model.bin", "model.bin"), ("\u00e9.bin", "e\u0301.bin")):
        files = [{**FILES[0], "path": a}, {**FILES[0], "path": b}]
        r = client.post("/api/v1/models/alice/x/versions", json={"files": files}, headers=bearer(hub.tokens["alice"]))
        assert "differ only by case" in _problem_without_internals(r, 422, hub)["detail"]


def test_honest_unicode_file_names_are_committed_and_downloadable(client: TestClient, hub: Hub, model: str) -> None:
    names = [
        "données/modèle v1.bin",
        "日本語.bin",
        "a" * 255,
        "\u0641\u0627\u0631\u0633\u06cc\u200c\u0646\u0627\u0645.bin",
    ]
    files = [{**FILES[0], "path": name} for name in names]
    r = client.post("/api/v1/models/alice/x/versions", json={"files": files}, headers=bearer(hub.tokens["alice"]))
    assert r.status_code == 201, r.text
    for name in names:
        assert client.get(f"/api/v1/models/alice/x/versions/1/files/{name}").content == WEIGHTS


def test_a_file_recorded_before_the_path_rules_is_downloadable_percent_encoded(
    client: TestClient, hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiprov.services.registry as registry

    directory = tmp_path / "old"
    directory.mkdir()
    (directory / "a\nb.json").write_bytes(b"{}")
    (directory / "esc\x1b.bin").write_bytes(WEIGHTS)
    with monkeypatch.context() as m:  # as a push did before the path rules
        m.setattr(registry, "check_model_paths", lambda paths: None)
        push(hub.container, directory, "alice/old")
    assert client.get("/api/v1/models/alice/old/versions/1/files/a%0Ab.json").content == b"{}"
    assert client.get("/api/v1/models/alice/old/versions/1/files/esc%1B.bin").content == WEIGHTS
    missing = client.get("/api/v1/models/alice/old/versions/1/files/a%0Ac.json")
    assert "'a\\nc.json'" in _problem_without_internals(missing, 404, hub)["detail"]  # quoted, never raw


def test_a_dataset_pointing_at_a_pickle_blob_is_422_saying_why(client: TestClient, hub: Hub) -> None:
    alice = bearer(hub.tokens["alice"])
    data = pickle.dumps({"a": 1})
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert client.put(f"/api/v1/blobs/{digest}", content=data, headers=alice).status_code == 201
    r = client.post("/api/v1/datasets", json={"name": "alice/ds", "digest": digest, "target": "a"}, headers=alice)
    assert "not UTF-8 text" in _problem_without_internals(r, 422, hub)["detail"]
    assert client.get("/api/v1/datasets/alice/ds").status_code == 404


def test_an_unsafe_commit_names_no_server_path(client: TestClient, hub: Hub) -> None:
    alice = bearer(hub.tokens["alice"])

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("owned",))

    data = pickle.dumps(Evil())
    sha = hashlib.sha256(data).hexdigest()
    client.put(f"/api/v1/blobs/sha256:{sha}", content=data, headers=alice)
    body = {"files": [{"path": "m.pkl", "size": len(data), "sha256": sha}]}
    r = client.post("/api/v1/models/alice/evil/versions", json=body, headers=alice)
    assert "quarantine/" in _problem_without_internals(r, 422, hub)["hint"]


def test_a_broken_blob_store_is_a_503_naming_no_server_path(client: TestClient, hub: Hub) -> None:
    import shutil

    tmp = hub.container.settings.blob_dir / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"a file where the store's tmp folder should be")
    alice = bearer(hub.tokens["alice"])
    digest = f"sha256:{hashlib.sha256(b'new bytes').hexdigest()}"
    r = client.put(f"/api/v1/blobs/{digest}", content=b"new bytes", headers=alice)
    assert "cannot write to the blob store" in _problem_without_internals(r, 503, hub)["detail"]


# local pushes go through the same rules --------------------------------------------------------------------------


def test_a_local_push_refuses_bad_names_and_metadata_before_storing(hub: Hub, tmp_path: Path) -> None:
    blobs = hub.container.settings.blob_dir
    before = sorted(blobs.rglob("*"))
    cases: list[tuple[dict[str, bytes], dict[str, Any]]] = [
        ({"esc\x1b.bin": b"1"}, {}),
        ({"Model.bin": b"1", "model.bin": b"2"}, {}),
        ({"w.bin": b"1"}, {"metadata": {"a": float("nan")}}),
        ({"w.bin": b"1"}, {"metadata": {"a": 2**60}}),
        ({"w.bin": b"1"}, {"description": "\ud800"}),
        ({"w.bin": b"1"}, {"tags": ["t"] * 65}),
    ]
    for files, request in cases:
        directory = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        for name, data in files.items():
            (directory / name).write_bytes(data)
        with pytest.raises(InvalidInput):
            hub.container.registry.push(directory, PushRequest(name="alice/local", **request), actor="alice")
    assert sorted(blobs.rglob("*")) == before


# the connection survives -----------------------------------------------------------------------------------------


def _local_port(response: httpx.Response) -> int:
    """The client-side port of the connection that carried `response` (httpcore's `network_stream` extension)."""
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


def test_the_keep_alive_connection_survives_a_run_of_bad_requests(server: Server) -> None:
    client = server.admin
    first = client.get("/api/v1/models")
    assert first.status_code == 200
    bad = [
        client.get("/api/v1/versions/root/m@99999999999999999999999"),
        client.get("/api/v1/versions/root/m@²"),
        client.post("/api/v1/models/root/m/versions", content=b'{"files": [], "metadata": {"a": NaN}}'),
        client.post("/api/v1/models/root/m/versions", content=b'{"description": "\\ud800"}'),
        client.post("/api/v1/models/root/m/versions", content=b"[" * 100_000),
        client.put(f"/api/v1/blobs/sha256:{SHA}", content=b"x", headers={"Content-Range": f"bytes 0-{'9' * 5000}/*"}),
        client.post("/api/v1/models/root/m/predict?version=\u0661", json={"inputs": [[1]]}),
    ]
    for r in bad:
        assert 400 <= r.status_code < 500, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    last = client.get("/api/v1/models")
    assert last.status_code == 200
    assert {_local_port(r) for r in [first, *bad, last]} == {_local_port(first)}
    assert "Traceback" not in server.log_text()


@pytest.fixture
def failing_server(hub: Hub) -> Iterator[str]:
    """A real uvicorn serving the app with one extra route that fails as a bug would (an unexpected exception)."""
    app: FastAPI = create_app(hub.container)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"internal detail {hub.container.settings.home}")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_a_500_is_a_generic_problem_and_keeps_the_connection(failing_server: str, hub: Hub) -> None:
    with httpx.Client(base_url=failing_server) as client:
        first = client.get("/api/v1/models")
        failures = [client.get("/boom") for _ in range(3)]
        after = client.get("/api/v1/models")
        ports = {_local_port(r) for r in [first, *failures, after]}
    for r in failures:
        body = assert_problem(r, 500)
        assert body["detail"] == "the server failed unexpectedly; the error is in its log"
        assert str(hub.container.settings.home) not in r.text
    assert after.status_code == 200
    assert len(ports) == 1
