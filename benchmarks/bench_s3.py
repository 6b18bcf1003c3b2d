"""Push and pull throughput with blobs in S3 (a real SeaweedFS on this machine), as a ratio to the local store.

    python benchmarks/bench_s3.py [--quick] [--runs N] [--data-dir DIR]

A model directory of 4 x 256 MiB random files (--quick: 4 x 16 MiB), generated once into benchmarks/.data and
read from the page cache, is pushed into a fresh hub on the local blob folder (the peer) and into a fresh hub with
`AIPROV_BLOBS=s3://…` on SeaweedFS (`weed server -s3`, started here on free 127.0.0.1 ports with its data next to
the model, stopped at the end), then pulled from each into a fresh directory. In process, through the services
(`registry.push`, `registry.pull`), CIDs on as by default; only the push or pull call is timed, not making the
hub. The floor of an S3 push is boto3 itself putting the same files into the same bucket (`upload_file`, its
managed multipart transfer, the files at once as push stages them), with no hashing, scan or registry. The
stores run in turn, run after run, so drift hits each alike; medians of 3 (--quick: 1).

SeaweedFS runs on the same cores as aiprov here, so the ratio is what one machine gives both, not what an S3
service on other machines would. Exits 0 when everything ran (no target: the ratio is reported, not judged).
`main(argv)` is what benchmarks/run.py calls.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench_cid import make_model

if TYPE_CHECKING:
    from blobtools import Weed

HERE = Path(__file__).resolve().parent
# The one SeaweedFS launcher, shared with the tests (it imports `tests.support`, so the repository root too).
sys.path[:0] = [str(HERE.parent / "tests" / "blobs"), str(HERE.parent)]
MiB = 1024 * 1024
FILES = 4
FULL_MIB = 256
QUICK_MIB = 16


def push_and_pull(model: Path, scratch: Path, blobs: str | None) -> tuple[float, float]:
    """Seconds of one push into a fresh hub (on `blobs`, or the local folder) and of one pull out of it."""
    from aiprov.config import Container, Settings
    from aiprov.services.registry import PushRequest

    home, dest = scratch / "home", scratch / "pulled"
    shutil.rmtree(home, ignore_errors=True)
    container = Container(Settings(home=home, blobs=blobs, actor="bench"))
    container.init()
    try:
        start = time.perf_counter()
        container.registry.push(model, PushRequest(name="bench/model"))
        pushed = time.perf_counter() - start
        start = time.perf_counter()
        container.registry.pull("bench/model@1", dest)
        pulled = time.perf_counter() - start
    finally:
        container.close()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
    return pushed, pulled


def boto3_floor(model: Path, weed: Weed) -> float:
    """Seconds for boto3 to upload the model's files, at once, to fresh keys of the bucket: the floor of a push."""
    from concurrent.futures import ThreadPoolExecutor

    from blobtools import BUCKET

    client, prefix = weed.client(), f"floor-{secrets.token_hex(4)}"
    files = sorted(model.iterdir())
    start = time.perf_counter()
    with ThreadPoolExecutor(len(files)) as pool:
        list(pool.map(lambda f: client.upload_file(str(f), BUCKET, f"{prefix}/{f.name}"), files))
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{FILES} x {QUICK_MIB} MiB and one run: a smoke test")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per store (default 3, quick 1)")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data")
    args = parser.parse_args(argv)
    mib = QUICK_MIB if args.quick else FULL_MIB
    runs = args.runs or (1 if args.quick else 3)
    model = args.data_dir / "s3" / f"model-{FILES}x{mib}mib"
    for i in range(FILES):
        make_model(model / f"part-{i}.bin", mib * MiB)
    size = FILES * mib * MiB
    for part in model.iterdir():  # warm the page cache: both stores read the same cached bytes
        part.read_bytes()

    from blobtools import start_weed, stop_weed

    scratch = args.data_dir / "s3" / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    weed = start_weed(scratch / "weed")
    saved = {name: os.environ.get(name) for name in weed.env()}
    os.environ.update(weed.env())
    samples: dict[str, list[tuple[float, float]]] = {"local": [], "s3": []}
    floor: list[float] = []
    try:
        push_and_pull(model, scratch / "warm", None)  # warm-up: imports, the first hub
        for _ in range(runs):
            samples["local"].append(push_and_pull(model, scratch / "local", None))
            samples["s3"].append(push_and_pull(model, scratch / "s3", weed.url(f"bench-{secrets.token_hex(4)}")))
            floor.append(boto3_floor(model, weed))
    finally:
        stop_weed(weed)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(scratch, ignore_errors=True)
    medians = {
        (store, what): statistics.median(s[i] for s in samples[store])
        for store in samples
        for i, what in enumerate(("push", "pull"))
    }
    medians[("floor", "push")] = statistics.median(floor)
    label = f"{FILES}x{mib} MiB dir"
    print(f"push and pull of a {label}, {runs} run(s) per store, median; nproc {os.cpu_count()}")
    print(f"{'store':<22} {'median s':>9} {'GB/s':>6}")
    for (store, what), seconds in medians.items():
        name = {"local": f"{what} local folder", "s3": f"{what} SeaweedFS S3", "floor": "boto3 upload_file"}[store]
        print(f"{name:<22} {seconds:>9.3f} {size / seconds / 1e9:>6.2f}")
    for what in ("push", "pull"):
        ratio = medians[("local", what)] / medians[("s3", what)]
        print(f"ratio aiprov s3 {what} throughput / local store [{label}]: {ratio:.2f}x")
    ratio = medians[("floor", "push")] / medians[("s3", "push")]
    print(f"ratio aiprov s3 push throughput / boto3 upload_file floor [{label}]: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    sys.exit(main())
