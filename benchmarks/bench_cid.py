"""IPFS CID speed, side by side with plain SHA-256 in the same run, and what CIDs add to `push`.

    python benchmarks/bench_cid.py [--quick] [--runs N] [--data-dir DIR]

1. CID of a 1 GiB model file (--quick: 64 MiB), random bytes generated once into benchmarks/.data and read from
   the page cache in the 4 MiB chunks push reads: hashlib SHA-256 of the file (the baseline), aiprov's UnixFS
   builder for CIDv0 (dag-pb leaves: the protobuf prefix, the chunk, the suffix are hashed in turn, no copy)
   and CIDv1 (raw leaves). Runs are interleaved so drift hits each tool alike; the median is reported.
   Targets (speed relative to hashlib): CIDv1 >= 0.8x, CIDv0 >= 0.5x.
2. `push` of the same file into a fresh home with CIDs (both versions, computed on helper threads during
   the one read) and without (`RegistryService.cids = False`, i.e. AIPROV_IPFS_CIDS=false), the push call alone
   timed (not making or removing the home). Target: with CIDs <= 1.15x the time without.

Exits 0 when everything ran, even if a target is missed. `main(argv)` is what benchmarks/run.py calls.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
MiB = 1024 * 1024
FULL_MIB = 1024
QUICK_MIB = 64
READ = 4 * MiB


def make_model(path: Path, size: int) -> None:
    if path.is_file() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(64 * MiB, left)
            f.write(os.urandom(n))
            left -= n
    os.replace(tmp, path)


def chunks(path: Path) -> Callable[[Callable[[memoryview], object]], None]:
    """Feed the file to a consumer in push's 4 MiB reads, through one reused buffer."""

    def feed(consume: Callable[[memoryview], object]) -> None:
        buf = bytearray(READ)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                consume(view[:n])

    return feed


def hashlib_sha256(path: Path) -> None:
    h = hashlib.sha256()
    chunks(path)(h.update)
    h.hexdigest()


def cid(version: int) -> Callable[[Path], None]:
    from aiprov.core.unixfs import FileBuilder

    def run(path: Path) -> None:
        builder = FileBuilder(version)
        chunks(path)(builder.write)
        builder.finish()

    return run


def push(with_cids: bool, scratch: Path) -> Callable[[Path], float]:
    """A push into a fresh home; the time of the push alone (making the home and removing it are not timed)."""
    from aiprov.config import Container, Settings
    from aiprov.services.registry import PushRequest

    def run(path: Path) -> float:
        home = scratch / ("home-cids" if with_cids else "home-plain")
        shutil.rmtree(home, ignore_errors=True)
        container = Container(Settings(home=home, actor="bench"))
        container.init()
        container.registry.cids = with_cids
        try:
            start = time.perf_counter()
            result = container.registry.push(path, PushRequest(name="bench/model"))
            seconds = time.perf_counter() - start
            assert (result.version.cids is not None) == with_cids
        finally:
            container.close()
            shutil.rmtree(home, ignore_errors=True)
        return seconds

    return run


def measure(path: Path, tools: dict[str, Callable[[Path], float | None]], runs: int) -> dict[str, float]:
    """Median seconds per tool; a tool that returns a time has timed its own part, else the whole call is."""
    for run in tools.values():  # warm-up: page cache, imports
        run(path)
    samples: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(runs):
        for name, run in tools.items():
            start = time.perf_counter()
            timed = run(path)
            samples[name].append(timed if timed is not None else time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_MIB} MiB model and one run: a smoke test")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per tool (default 3, quick 1)")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data")
    args = parser.parse_args(argv)
    mib = QUICK_MIB if args.quick else FULL_MIB
    runs = args.runs or (1 if args.quick else 3)
    model = args.data_dir / "cid" / f"model-{mib}mib.bin"
    make_model(model, mib * MiB)
    size = model.stat().st_size
    print(f"CID of a {mib} MiB file, {runs} run(s) per tool, median; nproc {os.cpu_count()}")
    hashing = measure(model, {"hashlib-sha256": hashlib_sha256, "aiprov-cidv1": cid(1), "aiprov-cidv0": cid(0)}, runs)
    scratch = args.data_dir / "cid" / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    pushing = measure(model, {"push-without-cids": push(False, scratch), "push-with-cids": push(True, scratch)}, runs)
    print(f"{'tool':<20} {'median s':>9} {'GB/s':>6}")
    for name, seconds in {**hashing, **pushing}.items():
        print(f"{name:<20} {seconds:>9.3f} {size / seconds / 1e9:>6.2f}")
    base = hashing["hashlib-sha256"]
    for version, target in ((1, 0.8), (0, 0.5)):
        ratio = base / hashing[f"aiprov-cidv{version}"]
        verdict = "PASS" if ratio >= target else "MISS"
        print(
            f"ratio aiprov cidv{version} speed / hashlib sha256 [{mib} MiB]: {ratio:.2f}x "
            f"(target >= {target}x) {verdict}"
        )
    ratio = pushing["push-with-cids"] / pushing["push-without-cids"]
    verdict = "PASS" if ratio <= 1.15 else "MISS"
    print(f"ratio aiprov push with CIDs / without [{mib} MiB]: {ratio:.2f}x (target <= 1.15x) {verdict}")
    return 0


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    sys.exit(main())
