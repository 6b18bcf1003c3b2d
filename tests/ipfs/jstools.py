"""Running the independent JS implementations (npm `ipfs-unixfs-importer`, `ipfs-car`) from the tests."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
IPFS_CAR = REPO / "node_modules" / ".bin" / "ipfs-car"


def node() -> str:
    exe = shutil.which("node")
    assert exe is not None, "node is not installed; run `npm ci` as the README says"
    assert (REPO / "node_modules" / "ipfs-unixfs-importer").is_dir(), "run `npm ci` first"
    return exe


def js_cids(path: Path, version: int) -> dict[str, Any]:
    """`{"root": CID, "files": {path: CID}}` as the JS UnixFS importer, configured as Kubo, computes them."""
    out = subprocess.run(
        [node(), str(HERE / "unixfs_cids.mjs"), str(version), str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def ipfs_car(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert IPFS_CAR.exists(), "run `npm ci` first"
    return subprocess.run([node(), str(IPFS_CAR), *args], capture_output=True, text=True, check=False, cwd=cwd)


def kubo_random(size: int, seed: str, piece: int = 4 << 20) -> Iterator[bytes]:
    """Kubo's `testutils.DeterministicRandomReader`: the ChaCha20 keystream under SHA-256(seed), zero nonce."""
    key = hashlib.sha256(seed.encode()).digest()
    stream = Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None).encryptor()
    zeros = bytes(piece)
    while size:
        n = min(size, piece)
        yield stream.update(zeros[:n])
        size -= n


KUBO_ALPHABET_EASY = "abcdefghijklmnopqrstuvwxyz01234567890-_"


def kubo_names(count: int, length: int, seed: str) -> list[str]:
    """File names as Kubo's cid_profiles test `createDeterministicFiles` makes them."""
    key = hashlib.sha256(seed.encode()).digest()
    stream = Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None).encryptor()
    alphabet = KUBO_ALPHABET_EASY
    return ["".join(alphabet[b % len(alphabet)] for b in stream.update(bytes(length))) for _ in range(count)]
