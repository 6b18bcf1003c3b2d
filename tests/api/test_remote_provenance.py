"""Signing, datasets, evaluation and verification against a real `aiprov serve`, the remote client trusting
nothing the server says: it signs what it hashed, and proves log inclusion with the log key it pinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apitools import InProcess, Server, assert_problem, bearer
from tests.support.cli import client_home, remote, remote_json

from aiprov import signing
from aiprov.adapters.files import hash_model
from aiprov.adapters.keys import write_private
from aiprov.core.note import Signer


def key_pair(tmp_path: Path, name: str) -> tuple[Path, Path]:
    private_pem, public_pem = signing.generate_key_pair()
    private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pem.pub"
    write_private(private, private_pem)
    public.write_bytes(public_pem)
    return private, public


def test_remote_sign_records_a_bundle_made_on_the_client(inprocess: InProcess, make_model: Any, tmp_path: Path) -> None:
    alice, bob = inprocess.add_user("alice"), inprocess.add_user("bob")
    model = make_model({"w.bin": b"\x01" * 5000, "config.json": b"{}"})
    remote_json(inprocess, alice, "push", str(model), "--name", "alice/m")
    private, public = key_pair(tmp_path, "alice")
    out = tmp_path / "m.sig"
    signed = remote_json(inprocess, alice, "sign", "alice/m@1", "--key", str(private), "--out", str(out))
    assert signed["recorded"] is True and signed["key_fingerprint"] == signing.key_fingerprint(
        signing.load_public_key(public)
    )
    # the bundle the client kept verifies with the public key, against the model on disk
    signing.verify_bundle(out.read_bytes(), hash_model(model), signing.load_public_key(public))
    again = remote_json(inprocess, alice, "sign", "alice/m@1", "--key", str(private), "--out", str(out))
    assert again["recorded"] is False
    # the inprocess recorded and logged it: its own verify checks the signature
    local = inprocess.cli_json("verify", "alice/m@1")
    assert any(c["check"].startswith("signature:") and c["ok"] for c in local["checks"])
    assert inprocess.cli_json("usage", "alice/m")["counts"]["sign"] == 1
    # bob may not sign alice's model
    bob_key, _ = key_pair(tmp_path, "bob")
    code, _, err = remote(inprocess, bob, "sign", "alice/m@1", "--key", str(bob_key), "--out", str(tmp_path / "b.sig"))
    assert code == 11 and "bob may not write under alice/" in err


def test_a_bundle_that_does_not_match_the_version_is_refused(
    inprocess: InProcess, make_model: Any, tmp_path: Path
) -> None:
    alice = inprocess.add_user("alice")
    remote_json(inprocess, alice, "push", str(make_model({"w.bin": b"one"})), "--name", "alice/one")
    remote_json(inprocess, alice, "push", str(make_model({"w.bin": b"two"})), "--name", "alice/two")
    private, public = key_pair(tmp_path, "alice")
    remote_json(inprocess, alice, "sign", "alice/one@1", "--key", str(private), "--out", str(tmp_path / "one.sig"))
    body = {"bundle": (tmp_path / "one.sig").read_text(), "public_key": public.read_text()}
    with inprocess.client() as http:
        r = http.post("/api/v1/models/alice/two/versions/1/signatures", json=body, headers=bearer(alice))
        problem = assert_problem(r, 422)
        assert "w.bin" in problem["detail"]
        other = key_pair(tmp_path, "other")[1].read_text()
        r = http.post(
            "/api/v1/models/alice/one/versions/1/signatures",
            json={**body, "public_key": other},
            headers=bearer(alice),
        )
        assert_problem(r, 422)
        assert_problem(http.post("/api/v1/models/alice/one/versions/1/signatures", json=body), 401)
        evidence = http.get("/api/v1/models/alice/two/versions/1/evidence").json()
    assert evidence["signatures"] == []  # nothing was recorded for the refused bundles
    assert evidence["registration"]["event"]["action"] == "push"


def test_remote_dataset_add_ls_and_eval(inprocess: InProcess, tmp_path: Path) -> None:
    alice, bob = inprocess.add_user("alice"), inprocess.add_user("bob")
    csv = tmp_path / "holdout.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    added = remote_json(inprocess, alice, "dataset", "add", str(csv), "--name", "alice/holdout", "--target", "label")
    assert added["new"] is True and added["rows"] == 40 and added["features"] == ["a", "b"]
    assert added["task"] == "classification" and added["author"] == "alice"
    assert (
        remote_json(inprocess, alice, "dataset", "add", str(csv), "--name", "alice/holdout", "--target", "label")["new"]
        is False
    )
    listed = remote_json(inprocess, None, "dataset", "ls")
    assert listed == inprocess.cli_json("dataset", "ls")
    assert [d["name"] for d in listed] == ["alice/holdout"]

    code, _, err = remote(inprocess, bob, "dataset", "add", str(csv), "--name", "alice/other", "--target", "label")
    assert code == 11 and "bob may not write under alice/" in err
    changed = tmp_path / "changed.csv"
    changed.write_text("a,b,label\n1,2,0\n")
    code, _, err = remote(
        inprocess, alice, "dataset", "add", str(changed), "--name", "alice/holdout", "--target", "label"
    )
    assert code != 0 and "already registered with other bytes" in err
    code, _, err = remote(inprocess, alice, "dataset", "add", str(csv), "--name", "alice/bad", "--target", "nope")
    assert code == 2 and "no column 'nope'" in err

    import joblib
    from sklearn.tree import DecisionTreeClassifier

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    features, labels = [[i, i % 3] for i in range(40)], [i % 2 for i in range(40)]
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(features, labels), model_dir / "model.joblib")
    remote_json(inprocess, alice, "push", str(model_dir), "--name", "alice/clf")
    result = remote_json(inprocess, bob, "eval", "alice/clf", "--dataset", "alice/holdout")
    assert result["metrics"]["accuracy"] == 1.0 and result["evaluator"] == "bob"
    assert result["dataset_digest"] == added["digest"]
    assert inprocess.cli_json("show", "alice/clf")["evaluations"][0]["id"] == result["id"]
    key, _ = key_pair(tmp_path, "bob")
    code, _, err = remote(inprocess, bob, "eval", "alice/clf", "--benchmark", "iris", "--key", str(key))
    assert code == 2 and "--key signs an evaluation on the machine that runs it" in err

    # --reproduce re-runs it on the hub's workers: the same JSON as on the hub's machine; a write scope is needed.
    reproduced = remote_json(inprocess, bob, "eval", "--reproduce", str(result["id"]))
    here = inprocess.cli_json("eval", "--reproduce", str(result["id"]))
    assert reproduced == here and reproduced["identical"] is True and reproduced["metrics"]["accuracy"] == 1.0
    assert remote(inprocess, None, "eval", "--reproduce", str(result["id"]))[0] == 10  # anonymous: unauthorized
    assert remote(inprocess, bob, "eval", "--reproduce", "999")[0] == 3
    code, out, _ = remote(inprocess, bob, "eval", "--reproduce", str(result["id"]))
    assert code == 0 and f"evaluation {result['id']} reproduced: identical metrics" in out


def test_remote_verify_proves_inclusion_with_the_pinned_key(
    inprocess: InProcess, make_model: Any, tmp_path: Path
) -> None:
    alice = inprocess.add_user("alice")
    remote_json(inprocess, alice, "push", str(make_model({"w.bin": b"weights"})), "--name", "alice/m")
    report = remote_json(inprocess, None, "verify", "alice/m@1")
    checks = {c["check"]: c for c in report["checks"]}
    assert report["ok"] is True
    assert checks["log.key"]["detail"].startswith("first use: pinned the server's key")
    assert checks["log.consistency"]["detail"].startswith("first use")
    pinned = next(client_home(inprocess).glob("servers/*/log.pub")).read_text().strip()
    assert pinned == inprocess.cli("log", "key").out.strip()

    remote_json(inprocess, alice, "push", str(make_model({"w.bin": b"more"})), "--name", "alice/m")
    report = remote_json(inprocess, None, "verify", "alice/m@1")
    checks = {c["check"]: c for c in report["checks"]}
    assert report["ok"] is True and checks["log.key"]["detail"].startswith("pinned in")
    assert checks["log.consistency"]["detail"].startswith("consistent with the trusted checkpoint")

    # a log key the client pinned out of band that the inprocess's checkpoints are not signed with: caught
    impostor = Signer.generate("impostor/aiprov").verifier
    code, out, _ = remote(
        inprocess, None, "verify", "alice/m@1", "--json", env={"AIPROV_LOG_VERIFIER_KEY": str(impostor)}
    )
    failed = {c["check"] for c in json.loads(out)["checks"] if not c["ok"]}
    assert code == 6 and "log.checkpoint" in failed


def test_remote_verify_catches_a_server_that_rewrote_history(server: Server, make_model: Any) -> None:
    from tests.support.tamper import rewrite_history

    from aiprov.config import Container, Settings

    alice = server.add_user("alice")
    remote_json(server, alice, "push", str(make_model({"w.bin": b"weights"})), "--name", "alice/m")
    remote_json(server, alice, "alias", "alice/m@1", "prod")
    assert remote_json(server, None, "verify", "alice/m@1")["ok"] is True  # the client now trusts this checkpoint

    # the operator, holding the log key, rebuilds the log with the alias event changed and signs new checkpoints
    operator = Container(Settings(home=server.home, workers=1))
    try:
        size = operator.log.latest().checkpoint.size
        index = next(i for i in range(size) if operator.log.entry(i)[2].action == "alias")
        forged = operator.log.entry(index)[2].entry().replace(b'"prod"', b'"test"')
        rewrite_history(operator, index, forged)
    finally:
        operator.close()
    code, out, _ = remote(server, None, "verify", "alice/m@1", "--json")
    checks = {c["check"]: c for c in json.loads(out)["checks"]}
    assert code == 6 and not checks["log.consistency"]["ok"]
    assert "history was rewritten" in checks["log.consistency"]["detail"]
    assert checks["log.inclusion"]["ok"]  # the forged log is self-consistent: only the pinned history exposes it
