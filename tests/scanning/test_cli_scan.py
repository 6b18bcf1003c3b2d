"""`aiprov scan PATH [--json]`: JSON shape, exit codes, human table."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import scan_corpus
from tests.support.cli import run


def test_scan_safe_model_exits_0_with_json(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    result = run("scan", str(tmp_path), "--json")
    assert result.code == 0, result.out + result.err
    assert json.loads(result.out) == {
        "verdict": "safe",
        "files": [{"path": "model.pkl", "format": "pickle", "verdict": "safe", "findings": []}],
    }


def test_scan_unsafe_model_exits_7_and_names_the_global(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(scan_corpus.call0("os", "system", f"touch {tmp_path / 'marker'}"))
    result = run("scan", str(path))
    assert result.code == 7
    assert "os.system" in result.out and "unsafe" in result.out
    assert not (tmp_path / "marker").exists()


def test_scan_unsupported_exits_1(tmp_path: Path) -> None:
    (tmp_path / "w.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 8)
    result = run("scan", str(tmp_path), "--json")
    assert result.code == 1
    assert json.loads(result.out)["verdict"] == "unsupported"


def test_scan_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    result = run("scan", str(tmp_path / "nope"))
    assert result.code == 2
    assert "no such file" in result.out + result.err
