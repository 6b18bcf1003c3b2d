"""`push` runs the scanner: unsafe models are refused, kept as evidence, flagged in the log and never stored."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from scan_corpus import malicious
from sklearn.tree import DecisionTreeClassifier
from tests.conftest import MakeModel
from tests.support.cli import cli

from aiprov.config import Container
from aiprov.core import merkle
from aiprov.errors import UnsafeModelError
from aiprov.records import ModelFilter
from aiprov.services.registry import PushRequest


def test_unsafe_push_is_refused_quarantined_and_flagged(hub: Container, make_model: MakeModel, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = malicious(str(marker), str(tmp_path))["os_system_protocol_2"]
    root = make_model({"model.bin": payload, "config.json": b"{}"})
    with pytest.raises(UnsafeModelError) as caught:
        hub.registry.push(root, PushRequest("mallory/trojan"))
    error = caught.value
    assert "model.bin" in error.message and "os" in error.message
    assert any(f["path"] == "model.bin" for f in error.findings)
    assert not marker.exists()
    assert hub.registry.list(ModelFilter()) == []
    assert not (hub.settings.blob_dir / "sha256").exists() or not any((hub.settings.blob_dir / "sha256").rglob("*"))
    (evidence,) = [p for p in hub.settings.quarantine_dir.iterdir() if not p.name.startswith(".")]
    assert (evidence / "model.bin").read_bytes() == payload
    (flagged,) = hub.registry.usage("mallory/trojan")
    assert flagged.action == "flagged" and flagged.subject == "sha256:" + evidence.name
    data, _, event = hub.log.entry(0)
    assert event.action == "flagged" and event.details["findings"] == error.findings
    proof = hub.log.inclusion(0)
    merkle.verify_inclusion(merkle.leaf_hash(data), 0, proof.tree_size, proof.hashes, proof.root)


def test_safe_model_is_registered_with_its_scan(hub: Container, make_model: MakeModel) -> None:
    clf = DecisionTreeClassifier(max_depth=2).fit([[0, 0], [1, 1], [0, 1], [1, 0]], [0, 1, 1, 0])
    result = hub.registry.push(make_model({"clf.pkl": pickle.dumps(clf)}), PushRequest("alice/tree"))
    assert result.scan.verdict == "safe"
    assert result.to_json()["scan"]["files"][0]["format"] == "pickle"
    assert hub.registry.usage("alice/tree")[0].details["scan"] == "safe"


def test_unknown_binary_is_registered_but_reported_unsupported(hub: Container, make_model: MakeModel) -> None:
    result = hub.registry.push(make_model({"weights.bin": bytes(range(256)) * 4}), PushRequest("alice/raw"))
    assert result.scan.verdict == "unsupported" and not result.deduplicated


def test_cli_push_of_an_unsafe_model_exits_7_with_one_line(tmp_path: Path, make_model: MakeModel) -> None:
    home = tmp_path / "home"
    assert cli(home, "init").code == 0
    payload = malicious(str(tmp_path / "pwned"), str(tmp_path))["subprocess_popen"]
    result = cli(home, "push", str(make_model({"m.pkl": payload})), "-n", "eve/x")
    assert result.code == 7
    assert result.error().startswith("error: eve/x: refused")
    assert "quarantine" in result.err and not (tmp_path / "pwned").exists()
