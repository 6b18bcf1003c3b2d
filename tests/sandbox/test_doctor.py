"""`aiprov doctor`: one real probe worker, each protection reported, and the exit code strict mode implies."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from tests.support.cli import cli

import aiprov.sandbox
from aiprov.sandbox import WorkerPool
from aiprov.sandbox.isolation import LAYERS

PROTECTIONS = [*LAYERS, "resource limits"]


def test_doctor_reports_every_protection_active_and_exits_0(tmp_path: Path) -> None:
    code, out, err = cli(tmp_path / "no-home-needed", "doctor", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [p["name"] for p in report["protections"]] == PROTECTIONS
    assert report["complete"] is True and report["mode"] == "best-effort"
    assert all(p["active"] and p["detail"] for p in report["protections"])


def test_doctor_names_a_missing_protection_and_why_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel without seccomp, simulated: the probe worker really starts without the layer."""
    monkeypatch.setattr(aiprov.sandbox, "WorkerPool", functools.partial(WorkerPool, without=["seccomp"]))
    code, out, _ = cli(tmp_path, "doctor")
    assert code == 1
    assert "seccomp" in out and "missing" in out and "left out" in out
    assert "AIPROV_SANDBOX=strict would refuse" in out


def test_doctor_with_the_sandbox_off_reports_each_layer_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIPROV_SANDBOX", "off")
    code, out, _ = cli(tmp_path, "doctor", "--json")
    assert code == 1
    status = {p["name"]: (p["active"], p["detail"]) for p in json.loads(out)["protections"]}
    assert status["environment"][0] and status["resource limits"][0]  # kept even when off
    assert status["landlock"] == (False, "switched off (AIPROV_SANDBOX=off)")


def test_doctor_refuses_a_bad_sandbox_setting_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPROV_SANDBOX", "paranoid")
    code, _, err = cli(tmp_path, "doctor")
    assert code == 2
    assert err.strip().startswith("error: invalid configuration: AIPROV_SANDBOX:")
    assert len(err.strip().splitlines()) == 1
