"""A push killed mid-copy leaves nothing visible, and the next push succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text


def test_push_killed_with_sigkill_mid_copy_leaves_no_blob_or_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "AIPROV_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "aiprov", "init"], env=env, check=True, capture_output=True)
    model = tmp_path / "big.bin"
    with open(model, "wb") as f:  # sparse: reading is fast, but the copy writes every byte
        f.truncate(1024**3)
        f.seek(1024**3 - 1)
        f.write(b"\x01")
    tmp_dir = home / "blobs" / "tmp"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiprov", "push", str(model), "--name", "alice/big"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in tmp_dir.glob("*") if p.stat().st_size > 0] if tmp_dir.exists() else []
        if partial:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the push finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    assert list((home / "blobs").glob("sha256/**/*")) == []
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    with engine.connect() as conn:
        for table in ("models", "versions", "version_files", "events"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table
    engine.dispose()

    small = tmp_path / "small.bin"
    small.write_bytes(b"next push")
    done = subprocess.run(
        [sys.executable, "-m", "aiprov", "push", str(small), "--name", "alice/big", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert '"version": 1' in done.stdout
    assert list(tmp_dir.iterdir()) == [], "the dead push's temporary file was swept"
