"""`aiprov verify --hf-cache`: a Hugging Face cache filled by `snapshot_download` from a real `aiprov serve`,
checked against the manifests and the log, remotely (`--server`) and on the hub's home."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apitools import Server
from huggingface_hub import snapshot_download
from tests.support.cli import remote, remote_json

from aiprov.adapters.hf_cache import default_cache

FILES = {"config.json": b'{"layers": 2}', "weights/a.bin": bytes(range(256)) * 64, "tokenizer.json": b"{}"}
VERIFICATION_FAILED = 6


@pytest.fixture
def cached(server: Server, make_model: Any, tmp_path: Path) -> tuple[Server, str, Path]:
    """alice/m pushed and downloaded into a fresh cache; returns (server, alice's token, the snapshot folder)."""
    alice = server.add_user("alice")
    remote_json(server, alice, "push", str(make_model(FILES)), "--name", "alice/m")
    folder = snapshot_download("alice/m", cache_dir=tmp_path / "hf", endpoint=server.base_url, token=alice)
    return server, alice, Path(folder)


def _verify(server: Server, token: str, location: Path) -> tuple[int, list[dict[str, Any]]]:
    code, out, err = remote(server, token, "verify", "--hf-cache", str(location), "--json")
    assert out, err
    return code, json.loads(out)


def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in report["checks"] if c["check"] == name)
    return found


def test_an_honest_snapshot_verifies_bytes_and_log(cached: tuple[Server, str, Path]) -> None:
    server, alice, folder = cached
    assert all(p.is_symlink() for p in folder.rglob("*") if p.is_file())  # the layout being checked
    for location in (folder, folder.parent.parent, folder.parent.parent.parent):  # snapshot, repo, cache
        code, reports = _verify(server, alice, location)
        assert code == 0, reports
        [report] = reports
        assert report["ok"] and report["model"] == "alice/m" and report["version"] == 1
        assert _check(report, "local")["detail"] == "3 file(s) match"
        assert _check(report, "log.inclusion")["ok"] and _check(report, "manifest")["ok"]


def test_without_a_dir_the_cache_huggingface_hub_uses_is_checked(
    cached: tuple[Server, str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server, alice, folder = cached
    cache = folder.parent.parent.parent
    code, out, err = remote(server, alice, "verify", "--hf-cache", "--json", env={"HF_HUB_CACHE": str(cache)})
    assert code == 0, err
    assert [r["snapshot"] for r in json.loads(out)] == [str(folder)]
    for name in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert default_cache() == tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert default_cache() == cache


def test_a_tampered_blob_fails_naming_the_file(cached: tuple[Server, str, Path]) -> None:
    server, alice, folder = cached
    blob = (folder / "weights" / "a.bin").resolve()
    blob.write_bytes(b"\xff" + blob.read_bytes()[1:])  # same size: what huggingface_hub itself would not notice
    code, [report] = _verify(server, alice, folder)
    assert code == VERIFICATION_FAILED and not report["ok"]
    local = _check(report, "local")
    assert not local["ok"] and "weights/a.bin differs" in local["detail"]
    assert _check(report, "log.inclusion")["ok"]  # the log still vouches for the registered bytes


def test_a_missing_and_an_extra_file_both_fail(cached: tuple[Server, str, Path]) -> None:
    server, alice, folder = cached
    (folder / "tokenizer.json").unlink()
    (folder / "extra.py").write_text("import os\n")
    code, [report] = _verify(server, alice, folder)
    assert code == VERIFICATION_FAILED
    detail = _check(report, "local")["detail"]
    assert "tokenizer.json is missing" in detail and "extra.py is not in the registered model" in detail


def test_a_symlink_out_of_blobs_and_an_unknown_commit_are_failures(cached: tuple[Server, str, Path]) -> None:
    server, alice, folder = cached
    other = folder.parent / ("0" * 40)
    other.mkdir()
    (other / "config.json").write_bytes(FILES["config.json"])
    outside = folder.parent.parent.parent / "outside.json"
    outside.write_bytes(FILES["config.json"])
    link = folder / "config.json"
    link.unlink()
    link.symlink_to(outside)
    code, reports = _verify(server, alice, folder.parent.parent)
    assert code == VERIFICATION_FAILED
    by_commit = {r["commit"]: r for r in reports}
    assert "no version of alice/m has the commit id 000000" in by_commit["0" * 40]["error"]
    assert "not to a file in" in by_commit[folder.name]["error"]


def test_verify_hf_cache_on_the_hubs_home_and_with_nothing_to_check(
    cached: tuple[Server, str, Path], tmp_path: Path
) -> None:
    server, _, folder = cached
    local = server.cli("verify", "--hf-cache", str(folder), "--json")
    [report] = json.loads(local.stdout)
    assert report["ok"] and _check(report, "log.checkpoint")["ok"]
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = server.cli("verify", "--hf-cache", str(empty), check=False)
    assert refused.returncode == 2 and "no Hugging Face model snapshots" in refused.stderr
    both = server.cli("verify", "--hf-cache", str(folder), "--path", str(folder), check=False)
    assert both.returncode == 2 and "--hf-cache" in both.stderr
