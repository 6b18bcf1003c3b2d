"""A hub whose blobs are in S3 (a real SeaweedFS), end to end: the CLI, gc, CAR export, the gateway, the API."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from blobtools import BUCKET, Weed
from tests.conftest import MakeModel
from tests.support.cli import Ran, cli, cli_json, remote_json

from aiprov.config import Container, Settings
from aiprov.core.digest import Digest
from aiprov.errors import BackendError
from aiprov.services.registry import PushRequest

BIG = os.urandom(9 * 2**20)  # past boto3's 8 MiB multipart threshold: a multipart upload and a multipart copy


def run(home: Path, env: dict[str, str], *args: str) -> Ran:
    """`aiprov --home HOME ARGS…` as alice with the S3 settings in `env`."""
    return cli(home, *args, env=env)


def run_json(home: Path, env: dict[str, str], *args: str) -> Any:
    return cli_json(home, *args, env=env)


def keys(weed: Weed, url: str, under: str = "") -> list[str]:
    prefix = url.removeprefix(f"s3://{BUCKET}/") + "/" + under
    return [o["Key"] for o in weed.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_push_pull_verify_gc_with_blobs_in_s3(weed: Weed, tmp_path: Path, make_model: MakeModel) -> None:
    url = weed.url()
    env = {**weed.env(), "AIPROV_BLOBS": url}
    home = tmp_path / "home"
    assert run(home, env, "init")[0] == 0
    model = make_model({"weights.bin": BIG, "config.json": b'{"n": 1}'})
    pushed = run_json(home, env, "push", str(model), "--name", "alice/big")
    assert not (home / "blobs").exists()  # nothing went to the local folder
    assert len(keys(weed, url, "sha256/")) == 2 and keys(weed, url) == keys(weed, url, "sha256/")
    again = run_json(home, env, "push", str(model), "--name", "alice/big")
    assert again["deduplicated"] is True and again["digest"] == pushed["digest"] and again["version"] == 1

    run_json(home, env, "pull", "alice/big@1", str(tmp_path / "out"))
    assert (tmp_path / "out" / "weights.bin").read_bytes() == BIG
    assert run_json(home, env, "verify", "alice/big@1")["ok"] is True

    orphan = Container(Settings(home=home, blobs=url, actor="alice"))
    with pytest.MonkeyPatch.context() as mp:
        for name, value in weed.env().items():
            mp.setenv(name, value)
        writer = orphan.blobs.writer()
        writer.write(b"uploaded, never committed")
        digest, _ = writer.commit()
    kept = run_json(home, env, "gc")  # a young orphan is kept
    assert kept["removed"] == 0 and kept["kept_young"] == 1 and kept["kept_in_use"] == 2
    gone = run_json(home, env, "gc", "--older-than", "0s")
    assert [b["digest"] for b in gone["blobs"]] == [str(digest)]
    assert len(keys(weed, url, "sha256/")) == 2
    assert run_json(home, env, "verify", "alice/big@1")["ok"] is True

    weights = url.removeprefix(f"s3://{BUCKET}/") + f"/sha256/{Digest.of(BIG).hex}"
    weed.client().put_object(Bucket=BUCKET, Key=weights, Body=b"\x02" * len(BIG))  # altered in the bucket
    code, out, err = run(home, env, "verify", "alice/big@1")
    assert code != 0 and "weights.bin" in out + err, out + err
    code, _, err = run(home, env, "pull", "alice/big@1", str(tmp_path / "again"))
    assert code == 5 and "does not match" in err and not (tmp_path / "again").exists(), err


def test_a_wrong_key_and_a_missing_bucket_are_one_line_cli_errors(
    weed: Weed, tmp_path: Path, make_model: MakeModel
) -> None:
    home = tmp_path / "home"
    good = {**weed.env(), "AIPROV_BLOBS": weed.url()}
    assert run(home, good, "init")[0] == 0
    model = make_model({"w.bin": b"weights"})
    port = weed.endpoint.rsplit(":", 1)[1]
    for env, expected in (
        ({**good, "AWS_SECRET_ACCESS_KEY": "wrong-secret-42"}, "refused the credentials"),
        ({**good, "AIPROV_BLOBS": "s3://no-such-bucket/x"}, "the S3 bucket 'no-such-bucket' does not exist"),
    ):
        code, _, err = run(home, env, "push", str(model), "--name", "alice/m")
        assert code == BackendError.exit_code, err
        assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
        assert "Traceback" not in err and "wrong-secret" not in err and port not in err, err


@pytest.mark.parametrize("blobs", ["/srv/blobs", "s3://", "s3://x/p", "s3://Upper/p"])
def test_a_malformed_blobs_setting_is_one_line_of_invalid_input(tmp_path: Path, blobs: str) -> None:
    home = tmp_path / "home"
    assert run(home, {}, "init")[0] == 0
    (tmp_path / "w.bin").write_bytes(b"weights")
    code, _, err = run(home, {"AIPROV_BLOBS": blobs}, "push", str(tmp_path / "w.bin"), "--name", "alice/m")
    assert code == 2 and err.count("\n") == 1 and "is not s3://BUCKET[/PREFIX]" in err, err


def test_the_api_answers_a_wrong_key_with_a_problem_body(weed: Weed, tmp_path: Path, s3_env: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    from aiprov.api import create_app

    settings = Settings(home=tmp_path / "home", blobs=weed.url(), actor="root", workers=1)
    Container(settings).init()
    os.environ["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-42"  # s3_env's monkeypatch restores it
    container = Container(settings)
    try:
        with TestClient(create_app(container)) as client:
            r = client.get(f"/api/v1/blobs/{Digest.of(b'x')}")
    finally:
        container.close()
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert "refused the credentials" in body["detail"] and body["code"] == "backend_failure"
    assert "wrong-secret" not in r.text and weed.endpoint.rsplit(":", 1)[1] not in r.text


@pytest.fixture(params=["local", "s3"])
def make_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Container]:
    """Hubs on the local folder and on S3, for what gc and IPFS read of a store."""
    url = None
    if request.param == "s3":
        request.getfixturevalue("s3_env")
        url = request.getfixturevalue("weed").url()
    made: list[Container] = []

    def make(name: str) -> Container:
        c = Container(Settings(home=tmp_path / name, blobs=url, actor="alice"))
        c.init()
        made.append(c)
        return c

    request.addfinalizer(lambda: [c.close() for c in made])
    return make


def test_car_export_and_gateway_blocks_read_the_same_from_either_store(
    make_hub: Callable[[str], Container], make_model: MakeModel, tmp_path: Path
) -> None:
    from aiprov.core.unixfs import Cid, FileBuilder

    hub = make_hub("h")
    weights = bytes(range(256)) * 5000  # five 256 KiB leaves
    hub.registry.push(make_model({"weights.bin": weights, "config.json": b"{}"}), PushRequest("alice/m"))
    hub.ipfs.export("alice/m@1", tmp_path / "m.car", 1)
    local = Container(Settings(home=tmp_path / "local", actor="alice"))
    local.init()
    try:
        local.registry.push(make_model({"weights.bin": weights, "config.json": b"{}"}), PushRequest("alice/m"))
        local.ipfs.export("alice/m@1", tmp_path / "local.car", 1)
        assert (tmp_path / "m.car").read_bytes() == (tmp_path / "local.car").read_bytes()
    finally:
        local.close()
    blocks: list[tuple[Cid, bytes]] = []
    builder = FileBuilder(1, on_block=lambda cid, parts: blocks.append((cid, b"".join(bytes(p) for p in parts))))
    builder.write(weights)
    builder.finish()
    assert len(blocks) == 6
    for cid, data in blocks:  # the gateway rebuilds each block from its byte range of the blob
        assert hub.ipfs.block(cid) == data


def test_gc_removes_the_same_from_either_store(make_hub: Callable[[str], Container], make_model: MakeModel) -> None:
    hub = make_hub("h")
    hub.registry.push(make_model({"w.bin": b"kept"}), PushRequest("alice/m"))
    writer = hub.blobs.writer()
    writer.write(b"orphan")
    orphan, _ = writer.commit()
    assert hub.gc.collect().removed == [] and hub.blobs.exists(orphan)  # young: kept
    assert hub.gc.collect(older_than_s=0).removed == [(orphan, 6)]
    assert not hub.blobs.exists(orphan) and hub.verification.verify("alice/m").ok


def test_a_server_on_s3_resumes_an_upload_in_parts_and_takes_a_remote_push(
    weed: Weed, tmp_path: Path, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch, s3_env: dict[str, str]
) -> None:
    from tests.api.apitools import init_home, start_server

    url = weed.url()
    monkeypatch.setenv("AIPROV_BLOBS", url)
    container, token = init_home(tmp_path / "served" / "home")
    container.close()
    server = start_server(container.settings.home, token)
    try:
        alice = server.add_user("alice")
        client = server.client(alice)
        data, cut = os.urandom(3 * 2**20), 2 * 2**20
        d = str(Digest.of(data))
        first = client.put(
            f"/api/v1/blobs/{d}", content=data[:cut], headers={"Content-Range": f"bytes 0-{cut - 1}/{len(data)}"}
        )
        assert first.status_code == 202 and client.get(f"/api/v1/blobs/{d}/status").json()["offset"] == cut
        assert keys(weed, url, "sha256/") == []  # the kept part is no blob
        rest = {"Content-Range": f"bytes {cut}-{len(data) - 1}/{len(data)}"}
        assert client.put(f"/api/v1/blobs/{d}", content=data[cut:], headers=rest).status_code == 201
        body = {"files": [{"path": "w.bin", "size": len(data), "sha256": d}]}
        assert client.post("/api/v1/models/alice/big/versions", json=body).status_code == 201
        assert client.get("/api/v1/models/alice/big/versions/1/files/w.bin").content == data
        ranged = client.get(f"/api/v1/blobs/{d}", headers={"Range": "bytes=-1"})
        assert ranged.status_code == 206 and ranged.content == data[-1:]

        model = make_model({"config.json": b"{}", "weights.bin": BIG})
        pushed = remote_json(server, alice, "push", str(model), "--name", "alice/m")
        assert pushed["new_blobs"] == 2
        assert remote_json(server, None, "verify", "alice/m@1")["ok"] is True
        assert len(keys(weed, url, "sha256/")) == 3 and keys(weed, url) == keys(weed, url, "sha256/")
    finally:
        server.stop()
