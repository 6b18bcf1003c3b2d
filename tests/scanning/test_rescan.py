"""A refused push can be answered: `rescan` judges it again and logs `cleared` (registered) or `confirmed`."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import pytest
from scan_corpus import malicious
from tests.conftest import MakeModel
from tests.support.cli import cli, run

from aiprov.config import Container
from aiprov.errors import InvalidInput, NotFound, UnsafeModelError
from aiprov.scanning import ScanLimits
from aiprov.services.registry import PushRequest


def _refuse(hub: Container, root: Path, name: str) -> str:
    with pytest.raises(UnsafeModelError):
        hub.registry.push(root, PushRequest(name))
    (flagged,) = hub.registry.usage(name)
    assert flagged.action == "flagged"
    return flagged.subject


def test_a_push_refused_by_a_limit_is_cleared_by_a_rescan_under_wider_limits(
    hub: Container, make_model: MakeModel
) -> None:
    payload = pickle.dumps({"weights": list(range(50_000))}, protocol=4)
    root = make_model({"model.joblib": gzip.compress(payload), "config.json": b"{}"})
    hub.registry.scan_limits = ScanLimits(max_ratio=1, allowance=0)  # the payload is larger than its gzip
    evidence = _refuse(hub, root, "alice/squeezed")
    hub.registry.scan_limits = ScanLimits()
    result = hub.registry.rescan(evidence[:15])
    assert result.outcome == "cleared" and result.version is not None
    assert str(result.version.manifest.digest) == evidence  # the very files that were refused
    assert [e.action for e in hub.registry.usage("alice/squeezed")] == ["cleared", "push", "flagged"]
    cleared = hub.registry.usage("alice/squeezed")[0]
    assert cleared.subject == evidence and cleared.details["version"] == 1
    assert not (hub.settings.quarantine_dir / evidence[7:]).exists()
    with pytest.raises(NotFound):
        hub.registry.rescan(evidence)  # answered once: nothing left in quarantine


def test_a_rescan_of_a_payload_is_confirmed_and_keeps_the_evidence(
    hub: Container, make_model: MakeModel, tmp_path: Path
) -> None:
    payload = malicious(str(tmp_path / "pwned"), str(tmp_path))["os_system_protocol_2"]
    evidence = _refuse(hub, make_model({"model.pkl": payload}), "mallory/trojan")
    result = hub.registry.rescan("mallory/trojan")
    assert result.outcome == "confirmed" and result.version is None and result.scan.verdict == "unsafe"
    confirmed = hub.registry.usage("mallory/trojan")[0]
    assert (confirmed.action, confirmed.subject) == ("confirmed", evidence)
    assert confirmed.details["findings"] == result.scan.findings
    assert (hub.settings.quarantine_dir / evidence[7:] / "model.pkl").read_bytes() == payload
    assert not (tmp_path / "pwned").exists()


def test_rescan_of_what_was_never_refused_is_not_found(hub: Container, make_model: MakeModel) -> None:
    hub.registry.push(make_model({"m.json": b"{}"}), PushRequest("alice/fine"))
    with pytest.raises(NotFound):
        hub.registry.rescan("alice/fine")
    with pytest.raises(NotFound):
        hub.registry.rescan("sha256:abcd")
    with pytest.raises(InvalidInput):
        hub.registry.rescan("not a ref")


def test_cli_rescan_exits_7_when_confirmed_and_0_when_cleared(
    tmp_path: Path, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "cli-home"
    assert cli(home, "init").code == 0
    payload = malicious(str(tmp_path / "pwned"), str(tmp_path))["os_system_protocol_2"]
    bad = make_model({"model.pkl": payload})
    assert cli(home, "push", str(bad), "--name", "mallory/x").code == 7
    confirmed = cli(home, "rescan", "mallory/x")
    assert confirmed.code == 7 and confirmed.out.startswith("confirmed sha256:"), confirmed.out
    data = gzip.compress(pickle.dumps(list(range(20_000)), protocol=4))
    squeezed = make_model({"model.joblib": data})
    squeeze = {"AIPROV_SCAN_MAX_RATIO": "1", "AIPROV_SCAN_RATIO_ALLOWANCE_MB": "0"}
    pushed = cli(home, "push", str(squeezed), "--name", "alice/y", env=squeeze)
    assert pushed.code == 7 and "decompress" in pushed.err, pushed.err
    cleared = cli(home, "rescan", "alice/y", "--json")
    assert cleared.code == 0, cleared.err
    assert cleared.json()["outcome"] == "cleared"


def test_rescan_against_a_server_is_an_explicit_error(tmp_path: Path) -> None:
    result = run("--server", "http://127.0.0.1:9", "--home", str(tmp_path), "rescan", "alice/x")
    assert result.code == 2
    assert "`aiprov rescan` runs on the hub's own machine, not against a server" in result.error()
