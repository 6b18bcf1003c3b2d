"""`pull --from-ipfs` against `pull` from the hub, side by side in the same run, as a user runs them.

    python benchmarks/bench_ipfs_pull.py [--quick] [--runs N] [--data-dir DIR] [--mib N]

A 1 GiB model file of random bytes (--quick: 64 MiB; the file bench_cid.py makes, reused) is pushed once into a
fresh home, which `aiprov serve` then serves on a free local port (one uvicorn process). Then, as separate
processes, interleaved, each into a fresh destination directory (removed afterwards, not timed):

- baseline: `aiprov --server URL pull bench/model DEST`: the file over the hub's API, SHA-256 checked, fsynced;
- `aiprov --server URL pull bench/model DEST --from-ipfs URL`: the manifest and CID from the hub, the blocks as
  a CAR from the same hub's trustless gateway (`GET /ipfs/{cid}`, the local gateway), every block checked
  against its CID, spooled, the file rebuilt, checked against the manifest, fsynced.

Median wall time of `--runs` runs (default 3, quick 1) after one warm-up of each. Target: the IPFS pull's speed
>= 0.7x the hub pull's. Exits 0 when everything ran, even if the target is missed. `main(argv)` is what
benchmarks/run.py calls.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench_cid import FULL_MIB, QUICK_MIB, MiB, make_model
from common import serve

HERE = Path(__file__).resolve().parent
TARGET = 0.7


def aiprov(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "aiprov", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"aiprov {' '.join(args)} failed: {done.stderr.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_MIB} MiB model and one run: a smoke test")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per tool (default 3, quick 1)")
    parser.add_argument("--mib", type=int, default=None, help=f"model size in MiB (default {FULL_MIB})")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data")
    args = parser.parse_args(argv)
    mib = args.mib or (QUICK_MIB if args.quick else FULL_MIB)
    runs = args.runs or (1 if args.quick else 3)
    model = args.data_dir / "cid" / f"model-{mib}mib.bin"
    make_model(model, mib * MiB)
    scratch = args.data_dir / "ipfs-pull"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = {**os.environ, "AIPROV_ACTOR": "bench", "AIPROV_WORKERS": "1"}
    env.pop("AIPROV_HOME", None)
    home = scratch / "home"
    aiprov("--home", str(home), "init", env=env)
    aiprov("--home", str(home), "push", str(model), "--name", "bench/model", env=env)
    process, url = serve(home, env)
    tools = {"aiprov pull": [], "aiprov pull --from-ipfs": ["--from-ipfs", url]}
    samples: dict[str, list[float]] = {name: [] for name in tools}
    try:
        print(f"pull of a {mib} MiB model from a local hub, {runs} run(s) per tool, median; nproc {os.cpu_count()}")
        for round_ in range(runs + 1):  # the first round warms the page cache and the server
            for name, extra in tools.items():
                dest = scratch / "dest"
                start = time.perf_counter()
                aiprov("--server", url, "pull", "bench/model", str(dest), *extra, env=env)
                seconds = time.perf_counter() - start
                if (dest / model.name).stat().st_size != model.stat().st_size:
                    raise RuntimeError(f"{name} wrote a file of the wrong size")
                shutil.rmtree(dest)
                if round_:
                    samples[name].append(seconds)
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)
    size = mib * MiB
    medians = {name: statistics.median(s) for name, s in samples.items()}
    print(f"{'tool':<26} {'median s':>9} {'GB/s':>6}")
    for name, seconds in medians.items():
        print(f"{name:<26} {seconds:>9.3f} {size / seconds / 1e9:>6.2f}")
    ratio = medians["aiprov pull"] / medians["aiprov pull --from-ipfs"]
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(
        f"ratio aiprov pull --from-ipfs speed / aiprov pull [{mib} MiB]: {ratio:.2f}x (target >= {TARGET}x) {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    sys.exit(main())
