"""The benchmark harness runs end to end at small sizes; speed itself is not a unit test, so no target is asserted."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_benchmark_runs_and_prints_every_ratio(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    ratios = [line for line in proc.stdout.splitlines() if line.startswith("ratio ")]
    for expected in (
        "aiprov hash / model-signing",
        "aiprov push / model-signing",
        "aiprov registry.push / seed",
        "aiprov registry.list / seed",
        "aiprov log.append / pymerkle",
        "picklescan speed",
        "aiprov cidv1 speed / hashlib sha256",
        "aiprov cidv0 speed / hashlib sha256",
        "aiprov push with CIDs / without",
        "aiprov s3 push throughput / local store",
        "aiprov s3 pull throughput / local store",
        "aiprov pull --from-ipfs speed / aiprov pull",
        "aiprov snapshot_download throughput / static file server",
    ):
        assert any(expected in line for line in ratios), proc.stdout
    assert "median s" in proc.stdout and "peak RSS MB" in proc.stdout
