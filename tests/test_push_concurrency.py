"""8 `aiprov push` processes of the same bytes on one home at once (issue 14): all succeed, one version, each
blob stored once. The HTTP and remote-CLI paths are tested in tests/api/test_concurrent_push.py."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from tests.support.cli import at_once_json, cli_json

PUSHES = 8
FILES = {
    "config.json": b'{"layers": 2}',
    "weights.bin": hashlib.sha256(b"w").digest() * (4 * 2**20 // 32),
}


def test_eight_concurrent_local_pushes_of_the_same_bytes_all_succeed_with_one_version(
    home: Path, make_model: Any
) -> None:
    model = make_model(FILES)
    env = {**os.environ, "AIPROV_ACTOR": "alice"}
    env.pop("AIPROV_HOME", None)
    command = [sys.executable, "-m", "aiprov", "--home", str(home), "push", str(model), "--name", "alice/same"]
    documents = at_once_json(command, env, PUSHES)
    assert {d["version"] for d in documents} == {1}
    assert sum(not d["deduplicated"] for d in documents) == 1
    assert cli_json(home, "show", "alice/same")["versions"] == 1
    stored = sorted(p.read_bytes() for p in (home / "blobs" / "sha256").rglob("*") if p.is_file())
    assert stored == sorted(FILES.values())
    assert [p for p in (home / "blobs" / "tmp").rglob("*") if p.is_file()] == []
    assert cli_json(home, "verify", "alice/same@1")["ok"] is True  # and the 8 push events are in the log
