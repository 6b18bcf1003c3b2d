"""The committed contract artifact is exactly what the pinned solc builds from contracts/; gas stays measured."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiprov.adapters.chain import load_artifact

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src" / "aiprov" / "contracts"
ARTIFACT = SHIPPED / "AiprovRegistry.json"
TEST_ONLY = ROOT / "tests" / "chain" / "artifacts"


def test_rebuilding_the_contracts_gives_the_committed_artifacts_byte_for_byte(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "solc").is_dir():
        pytest.fail("node and node_modules/solc are needed: install Node.js and run `npm ci`", pytrace=False)
    ship, test = tmp_path / "ship", tmp_path / "test"
    proc = subprocess.run(
        [node, str(ROOT / "contracts" / "build.mjs"), str(ship), str(test)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    for built, committed in ((ship, SHIPPED), (test, TEST_ONLY)):
        names = sorted(p.name for p in built.iterdir())
        assert names == sorted(p.name for p in committed.glob("*.json"))
        for name in names:
            assert (built / name).read_bytes() == (committed / name).read_bytes(), f"rebuild and commit {name}"
    assert {p.name for p in ship.iterdir()} == {"AiprovRegistry.json", "AiprovToken.json", "AiprovStaking.json"}
    assert [p.name for p in test.iterdir()] == ["ReentrantToken.json"]  # test-only code never ships


def test_staking_artifacts_are_built_on_the_pinned_openzeppelin() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@openzeppelin/contracts"]["version"].startswith("5.")
    staking = load_artifact("AiprovStaking")
    names = {item.get("name") for item in staking["abi"]}
    assert {"claim", "challenge", "resolve", "refund", "withdraw", "withdrawStake", "Resolved"} <= names
    assert staking["immutableReferences"]  # the parameters are immutables, masked when the code is compared
    token = {item.get("name") for item in load_artifact("AiprovToken")["abi"]}
    assert {"permit", "mint", "MINTER_ROLE", "grantRole"} <= token


def test_artifact_pins_the_compiler_and_evm_version_and_ships_in_the_package() -> None:
    artifact = load_artifact()
    assert artifact == json.loads(ARTIFACT.read_text())
    assert artifact["compiler"]["version"].startswith("0.8.37+")
    assert artifact["settings"]["evmVersion"] == "cancun"
    assert artifact["settings"]["optimizer"] == {"enabled": True, "runs": 200}
    names = {item.get("name") for item in artifact["abi"]}
    assert {"register", "anchor", "CheckpointAnchored", "AlreadyRegistered", "TreeSizeShrinks"} <= names
    assert "pragma solidity 0.8.37;" in (ROOT / "contracts" / "AiprovRegistry.sol").read_text()


def test_gas_script_measures_anchor_and_registration_on_anvil() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chain_gas.py"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    gas = json.loads(proc.stdout)
    later = gas["anchor (later)"]
    assert 21_000 < later < gas["anchor (first of an origin)"] < 100_000
    assert 21_000 < gas["register (aiprov:alice/iris@1)"] < gas["register (ipfs://CIDv1)"] < 200_000
    assert gas["anchor per event"] == {"1": later, "100": round(later / 100, 2), "10000": round(later / 10_000, 2)}


def test_stake_gas_script_measures_the_game_within_the_issue_goals() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_stake_gas.py"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    gas = json.loads(proc.stdout)
    assert 21_000 < gas["claim"] <= gas["claim (first of a contract)"] <= 150_000
    assert 21_000 < gas["challenge"] < gas["resolve (k=3)"] <= 200_000 < gas["resolve (k=5)"] < 300_000
    assert 21_000 < gas["withdraw (payout)"] < 60_000 and 21_000 < gas["withdrawStake (unchallenged)"] < 60_000
