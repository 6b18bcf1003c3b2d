"""`aiprov claim`, `audit`, `rate`, `flag` and `reputation` on a home, as each account would type them."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.support.audits import iris_model, log_size, run, run_json

from aiprov.config import Container, Settings
from aiprov.records import AuditRecord
from aiprov.services.audits import AUDIT_PREDICATE, verify_audit
from aiprov.services.claims import build_claim
from aiprov.services.datasets import benchmark


@pytest.fixture
def iris(home: Path, tmp_path: Path) -> dict[str, float]:
    """alice/iris@1, a good model, evaluated by alice on iris: its metrics."""
    model = iris_model(tmp_path / "good", good=True)
    assert run(home, "alice", "push", str(model), "--name", "alice/iris")[0] == 0
    metrics: dict[str, float] = run_json(home, "alice", "eval", "alice/iris", "--benchmark", "iris")["metrics"]
    return metrics


def test_claim_json_has_its_log_index_as_id_and_names_the_version_digest(home: Path, iris: dict[str, float]) -> None:
    before = log_size(home)
    claim = run_json(home, "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", "accuracy=0.97")
    shown = run_json(home, "alice", "show", "alice/iris@1")
    assert claim["id"] == before and log_size(home) == before + 1
    assert (claim["digest"], claim["version"], claim["publisher"]) == (shown["digest"], 1, "alice")
    assert (claim["metrics"], claim["tolerance"], claim["dataset"]) == ({"accuracy": 0.97}, 0.005, "sklearn:iris")
    entry = run_json(home, "alice", "log", "entry", str(claim["id"]))
    assert entry["event"]["action"] == "claim" and entry["event"]["subject"] == shown["digest"]


def test_audit_within_tolerance_is_confirmed_and_outside_it_refuted(home: Path, iris: dict[str, float]) -> None:
    accuracy = iris["accuracy"]
    near = run_json(
        home, "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", f"accuracy={accuracy + 0.004!r}"
    )
    far = run_json(
        home, "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", f"accuracy={accuracy + 0.01!r}"
    )
    confirmed = run_json(home, "bob", "audit", str(near["id"]))
    assert (confirmed["verdict"], confirmed["auditor"], confirmed["publisher"]) == ("confirmed", "bob", "alice")
    assert confirmed["metrics"] == iris and confirmed["target"] == "claim" and confirmed["claim_id"] == near["id"]
    assert confirmed["differences"][0]["ok"] is True
    assert confirmed["environment_mismatch"] == []  # the same machine: the same libraries
    refuted = run_json(home, "bob", "audit", str(far["id"]), code=6)
    assert refuted["verdict"] == "refuted" and refuted["differences"][0]["ok"] is False
    code, out, _ = run(home, "carol", "audit", str(far["id"]))
    assert code == 6 and "refuted" in out and "outside tolerance" in out


def test_a_claim_on_a_swapped_version_is_refuted_and_the_original_claim_still_holds(
    home: Path, iris: dict[str, float], tmp_path: Path
) -> None:
    # alice claims v1's measured accuracy, then swaps a poor model in under the same name and claims it again.
    honest = run_json(
        home, "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", f"accuracy={iris['accuracy']!r}"
    )
    poor = iris_model(tmp_path / "poor", good=False)
    assert run(home, "alice", "push", str(poor), "--name", "alice/iris")[0] == 0
    swapped = run_json(
        home, "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", f"accuracy={iris['accuracy']!r}"
    )
    v2 = run_json(home, "alice", "show", "alice/iris@2")
    assert swapped["version"] == 2 and swapped["digest"] == v2["digest"] != honest["digest"]

    refuted = run_json(home, "bob", "audit", str(swapped["id"]), code=6)
    assert refuted["verdict"] == "refuted" and refuted["digest"] == v2["digest"]
    assert refuted["metrics"]["accuracy"] < iris["accuracy"] - 0.2  # the poor model's own score, measured
    held = run_json(home, "bob", "audit", str(honest["id"]))
    assert held["verdict"] == "confirmed" and held["version"] == 1  # bound to v1's digest, not to the name


def test_an_audit_of_ones_own_claim_is_refused_and_nothing_is_recorded(home: Path, iris: dict[str, float]) -> None:
    claim = run_json(home, "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", "accuracy=0.9")
    evaluation = run_json(home, "alice", "show", "alice/iris")["evaluations"][0]["id"]
    before = log_size(home)
    code, _, err = run(home, "alice", "audit", str(claim["id"]))
    assert code == 11 and "alice published claim" in err
    code, _, err = run(home, "alice", "audit", "--eval", str(evaluation))
    assert code == 11 and "alice published evaluation" in err
    assert log_size(home) == before


def test_an_evaluation_audit_reproduces_it_exactly(home: Path, iris: dict[str, float]) -> None:
    evaluation = run_json(home, "alice", "show", "alice/iris")["evaluations"][0]
    audit = run_json(home, "bob", "audit", "--eval", str(evaluation["id"]))
    assert (audit["verdict"], audit["target"], audit["evaluation_id"]) == ("confirmed", "evaluation", evaluation["id"])
    assert audit["evaluation_leaf"] == evaluation["leaf_index"] and audit["tolerance"] == 0.0
    assert audit["metrics"] == evaluation["metrics"]


def test_bad_claims_are_one_line_errors_and_record_nothing(home: Path, iris: dict[str, float]) -> None:
    before = log_size(home)
    for args, code, words in (
        (["alice/iris", "--benchmark", "iris", "--metric", "mae=0.1"], 2, "does not produce the metric 'mae'"),
        (["alice/iris", "--benchmark", "iris", "--metric", "speed=3"], 2, "does not produce the metric 'speed'"),
        (["alice/iris", "--benchmark", "iris", "--metric", "accuracy=0.9", "--tolerance", "1.5"], 2, "out of range"),
        (["alice/iris", "--benchmark", "iris", "--metric", "accuracy=0.9", "--tolerance", "-0.1"], 2, "out of range"),
        (["alice/iris", "--benchmark", "iris", "--metric", "accuracy=nan"], 2, "not a finite number"),
        (["alice/iris", "--benchmark", "iris", "--metric", "accuracy"], 2, "not METRIC=VALUE"),
        (["alice/nope", "--benchmark", "iris", "--metric", "accuracy=0.9"], 3, "no model"),
        (["alice/iris@7", "--benchmark", "iris", "--metric", "accuracy=0.9"], 3, "no version 7"),
        (["alice/iris", "--benchmark", "mnist", "--metric", "accuracy=0.9"], 2, "unknown benchmark"),
        (["alice/iris", "--metric", "accuracy=0.9"], 2, "one of a benchmark or a dataset"),
    ):
        code_got, out, err = run(home, "alice", "claim", *args)
        assert (code_got, out) == (code, ""), (args, err)
        assert words in err and len(err.strip().splitlines()) == 1, err
    for args, code in ((["12345"], 3), (["--eval", "999"], 3), ([], 2), (["1", "--eval", "1"], 2)):
        assert run(home, "bob", "audit", *args)[0] == code, args
    assert log_size(home) == before


def test_a_signed_audit_is_an_in_toto_statement_the_auditors_key_verifies(
    home: Path, iris: dict[str, float], tmp_path: Path
) -> None:
    from aiprov import signing

    key = tmp_path / "bob.pem"
    assert run(home, "bob", "keys", "new", "--out", str(key))[0] == 0
    public = signing.load_public_key(Path(f"{key}.pub"))
    claim = run_json(home, "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", "accuracy=0.5")
    document = run_json(home, "bob", "audit", str(claim["id"]), "--key", str(key), code=6)
    record = AuditRecord.from_json(document)
    assert record.public_key == Path(f"{key}.pub").read_text()  # in the log entry with the signature
    verify_audit(record)
    statement = json.loads(signing.open_bundle(record.attestation.encode(), public).envelope.payload)  # type: ignore[union-attr]
    assert statement["predicateType"] == AUDIT_PREDICATE and statement["predicate"]["verdict"] == "refuted"
    forged = dataclasses.replace(record, verdict="confirmed")
    with pytest.raises(Exception, match="does not match"):
        verify_audit(forged)


def test_an_audit_reports_library_versions_that_differ_from_the_publishers(home: Path, iris: dict[str, float]) -> None:
    """A publisher on another machine (other scikit-learn, no pyarrow) claims; the audit says how it differs."""
    hub = Container(Settings(home=home, actor="dave"))
    try:
        _, version = hub.registry.show("alice/iris@1")
        data = benchmark("iris")
        made = build_claim(
            version, data.name, data.digest, data.task, data.split, [f"accuracy={iris['accuracy']!r}"], 0.005,
            publisher="dave", now=datetime.now(UTC), key=None,
        )  # fmt: skip
        theirs = {**made.packages, "scikit-learn": "0.24.2", "numpy": "1.19.5"}
        theirs.pop("aiprov")
        claim = hub.claims.record(dataclasses.replace(made, packages=theirs))
        audit = hub.audits.audit(claim.id, actor="erin")
    finally:
        hub.close()
    assert audit.verdict == "confirmed"
    mismatch = {m["package"]: (m["recorded"], m["audit"]) for m in audit.environment_mismatch}
    assert mismatch == {
        "scikit-learn": ("0.24.2", made.packages["scikit-learn"]),
        "numpy": ("1.19.5", made.packages["numpy"]),
        "aiprov": (None, made.packages["aiprov"]),
    }
    code, out, _ = run(home, "bob", "audit", str(claim.id))
    assert code == 0 and "environment: scikit-learn 0.24.2 there" in out


def test_ratings_count_the_last_one_per_account_and_flags_need_a_reason(home: Path, iris: dict[str, float]) -> None:
    assert run_json(home, "bob", "rate", "alice/iris", "--stars", "1")["stars"] == 1
    rated = run_json(home, "bob", "rate", "alice/iris", "--stars", "5")
    assert (rated["kind"], rated["account"], rated["version"]) == ("rate", "bob", 1)
    assert run_json(home, "carol", "rate", "alice/iris", "--stars", "4")["stars"] == 4
    flagged = run_json(home, "carol", "flag", "alice/iris", "--reason", "trained on the test rows")
    assert (flagged["kind"], flagged["reason"]) == ("flag", "trained on the test rows")
    before = log_size(home)
    for args in (["rate", "alice/iris", "--stars", "0"], ["rate", "alice/iris", "--stars", "6"],
                 ["flag", "alice/iris", "--reason", "  "], ["rate", "alice/nope", "--stars", "3"]):  # fmt: skip
        code, _, err = run(home, "bob", *args)
        assert code in (2, 3) and len(err.strip().splitlines()) == 1, args
    assert log_size(home) == before
    alice = run_json(home, "bob", "reputation", "alice")
    # bob's last rating (5: +2) and carol's (4: +1); carol's flag (-1)
    assert (alice["rating_points"], alice["flags_received"], alice["score"]) == (3, 1, 2)


def test_reputation_from_the_hub_and_from_the_log_agree_exactly(
    home: Path, iris: dict[str, float], tmp_path: Path
) -> None:
    true = run_json(
        home, "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", f"accuracy={iris['accuracy']!r}"
    )
    false = run_json(home, "alice", "claim", "alice/iris", "--benchmark", "iris", "--metric", "accuracy=0.9")
    run_json(home, "bob", "audit", str(true["id"]))
    run_json(home, "carol", "audit", str(true["id"]))
    run_json(home, "bob", "audit", str(false["id"]), code=6)
    run_json(home, "bob", "rate", "alice/iris", "--stars", "4")
    hub = run_json(home, "bob", "reputation")
    log = run_json(home, "bob", "reputation", "--from-log")
    assert hub == log
    by = {r["account"]: r for r in hub}
    assert by["alice"]["claims"] == {"confirmed": 1, "refuted": 1, "pending": 0}
    assert by["alice"]["score"] == 10 - 20 + 1
    assert by["bob"]["audits"]["agreed"] == 2 and by["bob"]["score"] == 6
    assert by["carol"]["score"] == 3
    for account in ("alice", "bob", "nobody"):
        assert run_json(home, "bob", "reputation", account) == run_json(
            home, "bob", "reputation", account, "--from-log"
        )
    assert run_json(home, "bob", "reputation", "nobody")["score"] == 0


def test_show_displays_claims_and_the_authors_reputation_and_ls_sorts_by_it(
    home: Path, iris: dict[str, float], tmp_path: Path
) -> None:
    assert run(home, "bob", "push", str(iris_model(tmp_path / "b", good=True)), "--name", "bob/iris")[0] == 0
    claim = run_json(
        home, "bob", "claim", "bob/iris", "--benchmark", "iris", "--metric", f"accuracy={iris['accuracy']!r}"
    )
    run_json(home, "carol", "audit", str(claim["id"]))
    shown = run_json(home, "alice", "show", "bob/iris")
    assert shown["author_reputation"] == 10 and [c["id"] for c in shown["claims"]] == [claim["id"]]
    code, out, _ = run(home, "alice", "show", "bob/iris")
    assert code == 0 and "(reputation 10)" in out and f"claim {claim['id']}" in out
    assert [m["name"] for m in run_json(home, "alice", "ls")] == ["alice/iris", "bob/iris"]
    assert [m["name"] for m in run_json(home, "alice", "ls", "--sort", "reputation")] == ["bob/iris", "alice/iris"]
    code, _, err = run(home, "alice", "ls", "--sort", "size")
    assert code == 2 and "cannot sort models by 'size'" in err


def test_the_python_api_claims_audits_and_reads_reputation(
    home: Path, iris: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiprov import Hub

    monkeypatch.setenv("AIPROV_ACTOR", "alice")
    with Hub(home) as alice:
        claim = alice.claim("alice/iris", {"accuracy": iris["accuracy"]}, benchmark="iris")
    monkeypatch.setenv("AIPROV_ACTOR", "bob")
    with Hub(home) as bob:
        assert bob.audit(claim.id).verdict == "confirmed"
        assert bob.reputation("alice").score == bob.reputation("alice", from_log=True).score == 10
