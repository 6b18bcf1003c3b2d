"""Provenance from the command line: log commands, keys, sign, verify — and the real model_signing CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import MakeModel
from tests.support.cli import cli, cli_json

from aiprov.core import merkle
from aiprov.core.checkpoint import Checkpoint
from aiprov.core.note import Verifier, open_note

MODEL_SIGNING = [sys.executable, "-m", "model_signing"]


def test_log_commands_print_proofs_that_verify(home: Path, make_model: MakeModel) -> None:
    for i in range(5):
        cli_json(home, "push", str(make_model({"w": bytes([i])})), "--name", f"alice/m{i % 2}")
    code, note, _ = cli(home, "log", "checkpoint")
    code_key, vkey, _ = cli(home, "log", "key")
    assert code == code_key == 0
    checkpoint = Checkpoint.parse(open_note(note, [Verifier.parse(vkey.strip())]).text)
    assert checkpoint.size == 5
    entry = cli_json(home, "log", "entry", "3")
    assert entry["index"] == 3 and entry["event"]["action"] == "push" and len(entry["leaf_hash"]) == 64
    proof = cli_json(home, "log", "proof", "--index", "3")
    assert set(proof) == {"index", "tree_size", "leaf_hash", "hashes", "root"}
    assert proof["root"] == checkpoint.root_hash.hex() and proof["leaf_hash"] == entry["leaf_hash"]
    merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]), 3, 5, [bytes.fromhex(h) for h in proof["hashes"]], checkpoint.root_hash
    )
    older = cli_json(home, "log", "proof", "--index", "1", "--size", "3")
    assert older["tree_size"] == 3
    cons = cli_json(home, "log", "consistency", "--from", "3")
    assert set(cons) == {"size1", "size2", "hashes", "root1", "root2"}
    merkle.verify_consistency(
        3, 5, [bytes.fromhex(h) for h in cons["hashes"]], bytes.fromhex(older["root"]), checkpoint.root_hash
    )


def test_log_errors_are_one_line(home: Path) -> None:
    code, _, err = cli(home, "log", "entry", "7")
    assert code == 3 and "no entry 7" in err
    code, _, err = cli(home, "log", "consistency", "--from", "2", "--to", "1")
    assert code == 2 and "0 < from <= to" in err


def test_keys_new_never_overwrites_and_hides_the_private_key(tmp_path: Path, home: Path) -> None:
    out = cli_json(home, "keys", "new", "--out", str(tmp_path / "k.pem"))
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert Path(out["public_key"]).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    code, _, err = cli(home, "keys", "new", "--out", str(tmp_path / "k.pem"))
    assert code == 2 and "refusing to overwrite" in err


def test_model_signing_cli_accepts_aiprov_bundles(
    home: Path, make_model: MakeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # push --sign writes NAME-vN.sig into the working directory
    model = make_model({"weights.bin": os.urandom(3000), "nested/tok.json": b"{}", ".gitignore": b"*.tmp"})
    cli_json(home, "keys", "new", "--out", str(tmp_path / "k.pem"))
    pushed = cli_json(home, "push", str(model), "--name", "alice/m", "--sign", str(tmp_path / "k.pem"))
    bundle = tmp_path / pushed["signature"]["bundle"]
    moved = tmp_path / "aiprov.sig"
    shutil.move(bundle, moved)
    verify = [*MODEL_SIGNING, "verify", "key", "--signature", str(moved), "--public_key", str(tmp_path / "k.pem.pub")]
    assert subprocess.run([*verify, str(model)], capture_output=True).returncode == 0
    (model / "weights.bin").write_bytes((model / "weights.bin").read_bytes()[:-1] + b"\x00")
    assert subprocess.run([*verify, str(model)], capture_output=True).returncode != 0


def test_aiprov_verify_accepts_model_signing_bundles(home: Path, make_model: MakeModel, tmp_path: Path) -> None:
    model = make_model({"weights.bin": os.urandom(3000), "cfg.json": b"{}"})
    cli_json(home, "keys", "new", "--out", str(tmp_path / "k.pem"))
    cli_json(home, "push", str(model), "--name", "alice/m")
    sig = tmp_path / "theirs.sig"
    subprocess.run(
        [*MODEL_SIGNING, "sign", "key", "--private_key", str(tmp_path / "k.pem"), "--signature", str(sig), str(model)],
        check=True,
        capture_output=True,
    )
    args = ["verify", "alice/m", "--bundle", str(sig), "--public-key", str(tmp_path / "k.pem.pub")]
    report = cli_json(home, *args, "--path", str(model))
    assert report["ok"] and "signature:given" in [c["check"] for c in report["checks"]]
    (model / "extra.bin").write_bytes(b"x")
    code, out, _ = cli(home, *args, "--path", str(model), "--json")
    assert code == 6
    failed = {c["check"]: c["detail"] for c in json.loads(out)["checks"] if not c["ok"]}
    assert "extra.bin" in failed["signature:given"] and "extra.bin" in failed["local"]


def test_verify_prints_each_check_and_exits_6_on_failure(home: Path, make_model: MakeModel) -> None:
    cli_json(home, "push", str(make_model({"w": b"abc"})), "--name", "alice/m")
    code, out, _ = cli(home, "verify", "alice/m")
    assert code == 0 and out.count("PASS") == 12  # through `formats`
    blob = next((home / "blobs" / "sha256").rglob("*"), None)
    blobs = [p for p in (home / "blobs" / "sha256").rglob("*") if p.is_file()]
    assert blob is not None and len(blobs) == 1
    blobs[0].write_bytes(b"abd")
    code, out, err = cli(home, "verify", "alice/m")
    assert code == 6 and "FAIL" in out and "bytes" in err
