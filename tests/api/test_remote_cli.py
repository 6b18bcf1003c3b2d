"""`aiprov --server URL --token T …`: the same commands and JSON against a real `aiprov serve` as on its home."""

from __future__ import annotations

import contextlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apitools import InProcess, Server, cut_upload, digest_of, until, wait_offset
from tests.support.cli import remote, remote_json

MODEL = {
    "config.json": b'{"layers": 2}',
    "weights/a.bin": bytes(range(256)) * 4096,
    "weights/b.bin": b"\x07" * 3_000_000,
}


def test_remote_push_ls_show_pull_usage_match_the_local_commands(
    inprocess: InProcess, make_model: Any, tmp_path: Path
) -> None:
    alice = inprocess.add_user("alice")
    model = make_model(MODEL)
    pushed = remote_json(
        inprocess, alice, "push", str(model), "--name", "alice/m", "--desc", "three files", "--tag", "x"
    )
    assert pushed["version"] == 1 and pushed["author"] == "alice" and pushed["new_blobs"] == 3
    assert pushed["new_bytes"] == sum(len(b) for b in MODEL.values()) and pushed["deduplicated"] is False
    assert pushed["digest"] == remote_json(inprocess, None, "hash", str(model))["digest"]

    again = remote_json(inprocess, alice, "push", str(model), "--name", "alice/m")
    assert again["deduplicated"] is True and again["new_blobs"] == 0

    assert remote_json(inprocess, None, "ls") == inprocess.cli_json("ls")
    assert remote_json(inprocess, None, "show", "alice/m@1") == inprocess.cli_json("show", "alice/m@1")

    dest = tmp_path / "pulled"
    pulled = remote_json(inprocess, None, "pull", "alice/m", str(dest))
    assert pulled["digest"] == pushed["digest"]
    for path, data in MODEL.items():
        assert (dest / path).read_bytes() == data
    assert not [p for p in dest.rglob(".*aiprov-*")]

    usage = until(  # one event per file, logged in batches
        lambda: remote_json(inprocess, None, "usage", "alice/m"), lambda u: u["counts"].get("download") == len(MODEL)
    )
    assert usage == inprocess.cli_json("usage", "alice/m")
    assert usage["counts"]["download"] == len(MODEL) and usage["counts"]["push"] == 2
    assert remote_json(inprocess, None, "usage", "alice/m@1")["counts"]["download"] == len(MODEL)


def test_remote_alias_log_and_verify(inprocess: InProcess, make_model: Any) -> None:
    alice = inprocess.add_user("alice")
    remote_json(inprocess, alice, "push", str(make_model(MODEL)), "--name", "alice/m")
    moved = remote_json(inprocess, alice, "alias", "alice/m@1", "prod")
    assert moved == {"name": "alice/m", "alias": "prod", "version": 1, "digest": moved["digest"], "previous": None}
    assert remote_json(inprocess, None, "show", "alice/m@prod")["aliases"] == ["prod"]
    assert remote_json(inprocess, None, "log", "entry", "0") == inprocess.cli_json("log", "entry", "0")
    proof = ("log", "proof", "--index", "0")
    assert remote_json(inprocess, None, *proof) == inprocess.cli_json(*proof)
    code, out, _ = remote(inprocess, None, "log", "checkpoint")
    assert code == 0 and out == inprocess.cli("log", "checkpoint").out
    for command in (("log", "checkpoint"), ("log", "key")):  # --json on these too, the same shape as locally
        assert remote_json(inprocess, None, *command) == inprocess.cli_json(*command)
    report = remote_json(inprocess, None, "verify", "alice/m@1")
    assert report["ok"] is True and {c["check"] for c in report["checks"]} >= {"manifest", "log.inclusion"}


def test_remote_errors_print_one_line_with_the_local_exit_codes(inprocess: InProcess, make_model: Any) -> None:
    alice, bob = inprocess.add_user("alice"), inprocess.add_user("bob")
    model = str(make_model({"w.bin": b"weights"}))
    code, out, err = remote(inprocess, None, "show", "alice/nothing")
    assert code == 3 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    code, out, err = remote(inprocess, None, "show", "alice/nothing", "--json")  # the inprocess's problem, as locally
    assert code == 3 and out == "" and json.loads(err)["code"] == "not_found" and err.count("\n") == 1
    code, _, err = remote(inprocess, None, "push", model, "--name", "alice/m", "--json")
    assert code == 10 and json.loads(err)["code"] == "unauthorized"
    assert remote(inprocess, None, "push", model, "--name", "alice/m")[0] == 10  # no token: unauthorized
    code, _, err = remote(inprocess, bob, "push", model, "--name", "alice/m")
    assert code == 11 and "bob may not write under alice/" in err
    assert remote(inprocess, "not-a-token", "ls")[0] == 10
    code, _, err = remote(inprocess, alice, "gc")
    assert code == 2 and "`aiprov gc` runs on the hub's own machine, not against a server" in err  # no traceback
    code, _, err = remote(inprocess, alice, "gc", "--json")
    assert code == 2 and json.loads(err)["code"] == "not_on_server"


def test_remote_push_of_an_unsafe_model_is_refused_and_kept_as_evidence(inprocess: InProcess, make_model: Any) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            import os

            return (os.system, ("echo pwned",))

    alice = inprocess.add_user("alice")
    model = make_model({"model.pkl": pickle.dumps(Evil()), "README.md": b"hi"})
    code, _, err = remote(inprocess, alice, "push", str(model), "--name", "alice/evil")
    assert code == 7 and "unsafe" in err
    assert any(p.name != ".scan" for p in (inprocess.home / "quarantine").iterdir())
    assert remote_json(inprocess, None, "usage", "alice/evil")["counts"] == {"flagged": 1}


def test_remote_push_continues_an_upload_cut_earlier(server: Server, make_model: Any) -> None:
    alice = server.add_user("alice")
    data = b"\x01\x02\x03" * 1_000_000
    cut_upload(server.base_url, alice, digest_of(data), data, sent=1_000_000)
    kept = wait_offset(server.client(alice), alice, digest_of(data))["offset"]
    assert kept > 0
    pushed = remote_json(server, alice, "push", str(make_model({"w.bin": data})), "--name", "alice/w")
    assert pushed["new_blobs"] == 1 and pushed["files"][0]["sha256"] == digest_of(data)[7:]
    assert list((server.home / "blobs" / "tmp" / "uploads").iterdir()) == []


def cutting_proxy(target_port: int, cut_after: int) -> tuple[int, Callable[[], int]]:
    """A TCP proxy to 127.0.0.1:`target_port` that drops its first connection once `cut_after` bytes came back.

    Returns its port and a function telling how many connections it cut (a real cut, as a flaky network makes).
    """
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    state = {"cuts": 0}

    def pipe(src: socket.socket, dst: socket.socket, budget: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if budget is not None and sent + len(data) > budget and state["cuts"] == 0:
                    state["cuts"] += 1
                    dst.sendall(data[: budget - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client, cut_after), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1], lambda: state["cuts"]


def test_remote_pull_continues_a_cut_download(server: Server, make_model: Any, tmp_path: Path) -> None:
    alice = server.add_user("alice")
    data = bytes(range(256)) * (24 * 1024)  # 6 MiB
    remote_json(server, alice, "push", str(make_model({"w.bin": data, "c.json": b"{}"})), "--name", "alice/m")
    port, cuts = cutting_proxy(int(server.base_url.rsplit(":", 1)[1]), cut_after=2 * 2**20)
    proxied = Server(
        f"http://127.0.0.1:{port}", server.home, server.admin_token, server.process, server.env, server.log_path
    )
    dest = tmp_path / "pulled"
    pulled = remote_json(proxied, None, "pull", "alice/m", str(dest))
    assert cuts() == 1, "the proxy cut the first download mid-way"
    assert (dest / "w.bin").read_bytes() == data and pulled["version"] == 1
    assert not list(dest.glob(".*aiprov-*"))
    # each file's download is recorded by a request that sent its last byte; the cut one may have handed every
    # byte to the kernel before the proxy dropped them, so it can count too: at least one per file
    usage = until(lambda: remote_json(server, None, "usage", "alice/m"), lambda u: u["counts"].get("download", 0) >= 2)
    assert 2 <= usage["counts"]["download"] <= 3


def test_remote_pull_of_a_tampered_blob_writes_nothing(server: Server, make_model: Any, tmp_path: Path) -> None:
    alice = server.add_user("alice")
    files = {"a.json": b'{"first": true}', "w.bin": b"\x01" * 100_000}
    remote_json(server, alice, "push", str(make_model(files)), "--name", "alice/m")
    [blob] = [p for p in (server.home / "blobs" / "sha256").rglob("*") if p.stat().st_size == 100_000]
    with open(blob, "r+b") as f:
        f.write(b"\x02")
    pulls = tmp_path / "pulls"
    pulls.mkdir()
    code, _, err = remote(server, None, "pull", "alice/m", str(pulls / "out"))
    assert code != 0 and "w.bin" in err, err
    assert list(pulls.iterdir()) == []  # not a.json either, and no temporary directory


def test_remote_ipfs_cid_export_and_import_match_the_local_commands(
    inprocess: InProcess, make_model: Any, tmp_path: Path
) -> None:
    alice = inprocess.add_user("alice")
    model = make_model(MODEL)
    pushed = remote_json(inprocess, alice, "push", str(model), "--name", "alice/m")
    for version in ("0", "1"):
        args = ("ipfs", "cid", "alice/m", "--cid-version", version)
        assert remote_json(inprocess, None, *args) == inprocess.cli_json(*args)

    # The CAR comes from the hub's trustless gateway, checked here: the same bytes as the hub's own export.
    remote_car, local_car = tmp_path / "remote.car", tmp_path / "local.car"
    exported = remote_json(inprocess, None, "ipfs", "export", "alice/m", str(remote_car))
    inprocess.cli("ipfs", "export", "alice/m", str(local_car))
    assert remote_car.read_bytes() == local_car.read_bytes()
    assert exported["root"] == inprocess.cli_json("ipfs", "cid", "alice/m")["cid"]
    assert exported["bytes"] == remote_car.stat().st_size and exported["blocks"] > len(MODEL)

    # Importing it elsewhere rebuilds the same model: the same manifest digest, under the CAR's root CID.
    imported = remote_json(inprocess, alice, "ipfs", "import", str(remote_car), "--name", "alice/from-car")
    assert imported["digest"] == pushed["digest"] and imported["same_cid"] is True
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".aiprov-car-")]

    code, _, err = remote(inprocess, alice, "ipfs", "pin", "alice/m")  # this hub has no IPFS endpoint
    assert code == 2 and "no IPFS endpoint to pin to" in err


def test_remote_ipfs_pin_uses_the_hubs_kubo_node_for_the_owner_only(
    make_server: Callable[..., Server], make_model: Any, tmp_path: Path
) -> None:
    from tests.ipfs.fake_ipfs import fake_ipfs
    from tests.ipfs.jstools import ipfs_car

    with fake_ipfs(tmp_path) as kubo:
        server = make_server(env={"AIPROV_IPFS_API": kubo.url})
        alice, bob = server.add_user("alice"), server.add_user("bob")
        remote_json(server, alice, "push", str(make_model(MODEL)), "--name", "alice/m")

        code, _, err = remote(server, bob, "ipfs", "pin", "alice/m")
        assert code != 0 and "bob may not write under alice/" in err and kubo.cars == []
        pinned = remote_json(server, alice, "ipfs", "pin", "alice/m", "--cid-version", "1")
        cid = server.cli_json("ipfs", "cid", "alice/m", "--cid-version", "1")["cid"]
        assert pinned == {
            "ref": "alice/m@1",
            "cid": cid,
            "via": "kubo",
            "endpoint": kubo.url,
            "status": "pinned",
            "request_id": None,
        }
    [car] = kubo.cars  # the hub sent the version's DAG; npm ipfs-car unpacks it to the model's files
    unpacked = ipfs_car("unpack", str(car), "--output", str(tmp_path / "out"))
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "out" / "weights" / "b.bin").read_bytes() == MODEL["weights/b.bin"]
    events = [e for e in server.cli_json("usage", "alice/m")["events"] if e["action"] == "ipfs.pin"]
    assert [(e["actor"], e["details"]["cid"]) for e in events] == [("alice", cid)]


def test_remote_ipfs_export_of_altered_bytes_leaves_no_file(server: Server, make_model: Any, tmp_path: Path) -> None:
    alice = server.add_user("alice")
    remote_json(server, alice, "push", str(make_model(MODEL)), "--name", "alice/m")
    blob = digest_of(MODEL["weights/b.bin"]).removeprefix("sha256:")
    (server.home / "blobs" / "sha256" / blob[:2] / blob[2:]).write_bytes(b"\x08" * len(MODEL["weights/b.bin"]))
    exports = tmp_path / "exports"
    exports.mkdir()
    code, stdout, err = remote(server, None, "ipfs", "export", "alice/m", str(exports / "m.car"))
    # The hub's own read-back check cuts the stream at the altered blob; the client keeps nothing of it.
    assert code == 8 and stdout == "" and err.startswith("error: download from") and err.count("\n") == 1
    assert list(exports.iterdir()) == []  # nothing half-written, no temporary file


def test_remote_ls_filters_by_format_and_sorts_on_the_server(inprocess: InProcess, make_model: Any) -> None:
    alice = inprocess.add_user("alice")
    remote_json(inprocess, alice, "push", str(make_model({"a.json": b'{"x": 1}'})), "--name", "alice/j")
    remote_json(inprocess, alice, "push", str(make_model({"b.txt": b"plain words"})), "--name", "alice/t")
    remote_json(inprocess, alice, "rate", "alice/t", "--stars", "5")  # a self-rating: counts for nothing
    assert [m["name"] for m in remote_json(inprocess, None, "ls", "--format", "text")] == ["alice/t"]
    assert [m["name"] for m in remote_json(inprocess, None, "ls", "--sort", "updated")] == ["alice/t", "alice/j"]
    ran = remote(inprocess, None, "ls", "--sort", "size")
    assert ran.code != 0 and "cannot sort models by 'size'" in ran.error()
