"""Claims, audits, ratings and reputation against a real `aiprov serve`: auditors on their own homes, `--server`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apitools import Server, assert_problem
from tests.support.audits import iris_model, remote_as, remote_as_json


def test_the_audit_game_against_a_server_with_auditors_on_their_own_homes(server: Server, tmp_path: Path) -> None:
    tokens = {name: server.add_user(name) for name in ("alice", "bob", "carol", "dave")}
    homes = {name: tmp_path / f"{name}-home" for name in tokens}

    def call(name: str, *args: str, code: int = 0) -> Any:
        return remote_as_json(server, homes[name], tokens[name], *args, code=code)

    call("alice", "push", str(iris_model(tmp_path / "good", good=True)), "--name", "alice/iris")
    measured = call("alice", "eval", "alice/iris", "--benchmark", "iris")["metrics"]
    assert remote_as(server, homes["alice"], tokens["alice"], "keys", "new", "--out", str(tmp_path / "a.pem"))[0] == 0
    honest = call(
        "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", f"accuracy={measured['accuracy']!r}",
        "--key", str(tmp_path / "a.pem"),
    )  # fmt: skip
    assert honest["publisher"] == "alice" and honest["attestation"] is not None
    assert call("bob", "show", "alice/iris")["digest"] == honest["digest"]

    # Each auditor fetches the bytes by digest, checks them and evaluates on its own machine.
    assert remote_as(server, homes["bob"], tokens["bob"], "keys", "new", "--out", str(tmp_path / "b.pem"))[0] == 0
    bob = call("bob", "audit", str(honest["id"]), "--key", str(tmp_path / "b.pem"))
    carol = call("carol", "audit", str(honest["id"]))
    assert (bob["verdict"], carol["verdict"]) == ("confirmed", "confirmed")
    assert bob["metrics"] == measured and bob["auditor"] == "bob" and bob["attestation"] is not None
    assert server.client().get(f"/api/v1/audits/{bob['id']}").json() == bob
    assert [a["id"] for a in server.client().get(f"/api/v1/claims/{honest['id']}/audits").json()] == [
        bob["id"],
        carol["id"],
    ]

    evaluation = call("carol", "show", "alice/iris")["evaluations"][0]
    reproduced = call("carol", "audit", "--eval", str(evaluation["id"]))
    assert (reproduced["verdict"], reproduced["metrics"]) == ("confirmed", evaluation["metrics"])

    # The swap: a poor model under the same name, claimed with the good one's numbers.
    call("alice", "push", str(iris_model(tmp_path / "poor", good=False)), "--name", "alice/iris")
    swapped = call(
        "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", f"accuracy={measured['accuracy']!r}"
    )
    assert swapped["version"] == 2
    assert call("bob", "audit", str(swapped["id"]), code=6)["verdict"] == "refuted"
    assert call("dave", "audit", str(swapped["id"]), code=6)["verdict"] == "refuted"

    # Self-audits are refused on the client and by the server.
    code, _, err = remote_as(server, homes["alice"], tokens["alice"], "audit", str(honest["id"]))
    assert code == 11 and "alice published claim" in err
    forged = {**carol, "auditor": "alice"}
    alice_http = server.client(tokens["alice"])
    assert_problem(alice_http.post("/api/v1/audits", json={"audit": forged}), 403)  # alice's own claim
    as_carol = {**carol, "auditor": "bob"}
    assert_problem(alice_http.post("/api/v1/audits", json={"audit": as_carol}), 403)  # not alice's audit
    carol_http = server.client(tokens["carol"])
    lie = {**carol, "verdict": "refuted"}
    assert "does not match" in assert_problem(carol_http.post("/api/v1/audits", json={"audit": lie}), 422)["detail"]
    assert_problem(carol_http.post("/api/v1/audits", json={"audit": {"verdict": "x"}}), 422)
    assert_problem(
        carol_http.post("/api/v1/audits", json={"audit": {**carol, "claim_id": 2**53 - 1, "target_id": 2**53 - 1}}), 404
    )
    assert_problem(carol_http.post("/api/v1/audits", json={"audit": {**carol, "target": "version"}}), 422)
    assert_problem(carol_http.post("/api/v1/audits", json={"audit": {**carol, "split": "x"}}), 422)
    assert_problem(server.client().post("/api/v1/audits", json={"audit": carol}), 401)
    assert_problem(server.client().get("/api/v1/claims/999999"), 404)
    assert_problem(server.client().get("/api/v1/audits/0"), 404)
    signed_lie = {**bob, "metrics": {**bob["metrics"], "accuracy": 0.5}}
    signed_lie["differences"] = [{**bob["differences"][0], "measured": 0.5, "delta": 0.5 - measured["accuracy"]}]
    signed_lie["differences"][0]["ok"] = False
    signed_lie["verdict"] = "refuted"
    assert bob["public_key"] == (tmp_path / "b.pem.pub").read_text()
    bob_http = server.client(tokens["bob"])
    body = assert_problem(bob_http.post("/api/v1/audits", json={"audit": signed_lie}), 422)
    assert "does not match" in body["detail"]

    # Ratings and flags, with the API's checks.
    call("carol", "rate", "alice/iris@1", "--stars", "5")
    call("dave", "flag", "alice/iris@2", "--reason", "its claim was refuted")
    assert_problem(carol_http.post("/api/v1/ratings", json={"ref": "alice/iris", "stars": 9}), 422)
    assert_problem(server.client().post("/api/v1/ratings", json={"ref": "alice/iris", "stars": 3}), 401)
    assert_problem(carol_http.post("/api/v1/flags", json={"ref": "alice/nope", "reason": "x"}), 404)

    # Reputation: the hub's tables, the server's own home and the log's tiles proven here all agree exactly.
    from_hub = call("bob", "reputation")
    from_log = call("bob", "reputation", "--from-log")
    on_server = json.loads(server.cli("reputation", "--json").stdout)
    assert from_hub == from_log == on_server
    by = {r["account"]: r for r in from_hub}
    assert by["alice"]["claims"] == {"confirmed": 2, "refuted": 1, "pending": 0}  # the claim and the audited evaluation
    assert by["alice"]["score"] == 10 + 10 - 20 + 2 - 1
    assert by["carol"]["score"] == 3 + 3
    assert by["bob"]["audits"]["agreed"] == 2 and by["bob"]["score"] == 6
    assert call("dave", "reputation", "alice") == call("dave", "reputation", "alice", "--from-log") == by["alice"]


def test_a_claim_must_be_the_callers_and_match_the_hubs_data(server: Server, tmp_path: Path) -> None:
    tokens = {name: server.add_user(name) for name in ("alice", "bob")}
    home = tmp_path / "alice-home"
    remote_as_json(
        server, home, tokens["alice"], "push", str(iris_model(tmp_path / "m", good=True)), "--name", "alice/iris"
    )
    claim = remote_as_json(
        server, home, tokens["alice"], "claim", "alice/iris", "--benchmark", "iris", "--metric", "accuracy=0.9"
    )
    bob = server.client(tokens["bob"])
    assert_problem(bob.post("/api/v1/claims", json={"claim": claim}), 403)
    alice = server.client(tokens["alice"])
    other_data = {**claim, "dataset_digest": "sha256:" + "0" * 64}
    assert (
        "not sklearn:iris as this hub has it"
        in assert_problem(alice.post("/api/v1/claims", json={"claim": other_data}), 422)["detail"]
    )
    assert_problem(alice.post("/api/v1/claims", json={"claim": {**claim, "tolerance": 2}}), 422)
    assert_problem(alice.post("/api/v1/claims", json={"claim": {**claim, "metrics": {"mae": 1.0}}}), 422)
    assert_problem(alice.post("/api/v1/claims", json={"claim": {"model": "x"}}), 422)
    signed_without_key = {**claim, "attestation": {"mediaType": "x"}, "key_fingerprint": "ab"}
    assert_problem(alice.post("/api/v1/claims", json={"claim": signed_without_key}), 422)
    for args, code in (
        (["claim", "alice/iris", "--benchmark", "iris", "--metric", "mae=1"], 2),
        (["claim", "alice/iris", "--benchmark", "iris", "--metric", "accuracy=0.9", "--tolerance", "3"], 2),
        (["claim", "alice/none", "--benchmark", "iris", "--metric", "accuracy=0.9"], 3),
        (["audit", "424242"], 3),
    ):
        got, out, err = remote_as(server, home, tokens["alice"], *args)
        assert (got, out) == (code, "") and len(err.strip().splitlines()) == 1, (args, err)
    assert [c["id"] for c in server.client().get("/api/v1/claims", params={"ref": "alice/iris"}).json()] == [
        claim["id"]
    ]


def test_a_remote_audit_of_a_dataset_claim_fetches_the_dataset_by_digest(server: Server, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    tokens = {name: server.add_user(name) for name in ("alice", "bob")}
    homes = {name: tmp_path / f"{name}-home" for name in tokens}

    def call(name: str, *args: str, code: int = 0) -> Any:
        return remote_as_json(server, homes[name], tokens[name], *args, code=code)

    x, y = load_iris(return_X_y=True)
    csv = tmp_path / "iris.csv"
    rows = [
        "f0,f1,f2,f3,y",
        *(",".join([*(repr(float(v)) for v in row), str(int(t))]) for row, t in zip(x, y, strict=True)),
    ]
    csv.write_text("\n".join(rows) + "\n")
    call("alice", "dataset", "add", str(csv), "--name", "alice/iris-all", "--target", "y", "--task", "classification")
    call("alice", "push", str(iris_model(tmp_path / "good", good=True)), "--name", "alice/iris")
    measured = call("alice", "eval", "alice/iris", "--dataset", "alice/iris-all")["metrics"]
    claim = call(
        "alice", "claim", "alice/iris", "--dataset", "alice/iris-all", "--metric", f"f1_macro={measured['f1_macro']!r}"
    )
    assert claim["split"] == {"method": "whole", "rows": 150, "test_rows": 150}
    audit = call("bob", "audit", str(claim["id"]))
    assert (audit["verdict"], audit["metrics"], audit["dataset_digest"]) == (
        "confirmed",
        measured,
        claim["dataset_digest"],
    )
