"""aiprov speed claims, each measured side by side with a baseline in the same run.

    python benchmarks/run.py [--quick] [--only hash|registry|log|scan|cid|s3|ipfs] [--data-dir DIR] [--runs N]

Prints one table (tool, case, median seconds, GB/s, peak RSS, ratio against the baseline, target, PASS/MISS)
and one `ratio` line per comparison. Exits 0 when every measurement ran, even if a target is missed; nonzero
only when a tool fails or the setup is broken. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
GEN_CHUNK = 64 * MiB
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None  # GNU time: peak RSS

HASH_TARGET = 0.6  # aiprov hash <= 0.6x model-signing's wall time (directory case)
PUSH_TARGET = 1.0  # aiprov push <= 1.0x model-signing's wall time (directory case)
RSS_TARGET_MB = 150.0
VERSION_TARGET_S = 0.001  # median time to register one small version
LIST_TARGET_S = 0.020  # median time to list 1,000 versions by a name glob


@dataclass(frozen=True)
class Sizes:
    dir_files: int
    dir_file_size: int
    single_size: int
    versions: int
    list_runs: int

    @property
    def tag(self) -> str:
        return f"{self.dir_files}x{self.dir_file_size // MiB}M-{self.single_size // MiB}M"


FULL = Sizes(dir_files=4, dir_file_size=512 * MiB, single_size=2048 * MiB, versions=1000, list_runs=21)
QUICK = Sizes(dir_files=4, dir_file_size=16 * MiB, single_size=64 * MiB, versions=100, list_runs=5)


@dataclass
class Row:
    tool: str
    case: str
    seconds: float
    nbytes: int | None = None
    rss_mb: float | None = None
    ratio: float | None = None
    versus: str = ""
    target: str = ""
    result: str = ""


class BenchError(Exception):
    """A tool failed or the setup is unusable: the run cannot report a fair number."""


# data ----------------------------------------------------------------------------------------------


def _write_random(path: Path, size: int) -> None:
    """Write `size` random bytes, via a temporary name so an interrupted run never leaves a short file."""
    if path.is_file() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb", buffering=0) as f:
        left = size
        while left:
            n = min(GEN_CHUNK, left)
            f.write(os.urandom(n))
            left -= n
    os.replace(tmp, path)


def prepare_data(root: Path, sizes: Sizes) -> tuple[Path, Path]:
    """The model directory and the single-file model for `sizes`, generated once and reused."""
    base = root / sizes.tag
    model_dir = base / "dir"
    for i in range(sizes.dir_files):
        _write_random(model_dir / f"part-{i}.bin", sizes.dir_file_size)
    single = base / "single" / "model.bin"
    _write_random(single, sizes.single_size)
    return model_dir, single


def warm(paths: Sequence[Path]) -> None:
    """Read every file once so each tool starts from the same (cached) page-cache state."""
    buf = bytearray(GEN_CHUNK)
    for p in paths:
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file():
                with open(f, "rb", buffering=0) as fh:
                    while fh.readinto(buf):
                        pass


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# running tools ----------------------------------------------------------------------------------------------


def tool(name: str) -> str:
    found = VENV_BIN / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        raise BenchError(f"{name} is not installed (looked in {VENV_BIN} and PATH)")
    return which


def timed(argv: Sequence[str]) -> tuple[float, float]:
    """Run `argv`; return (wall seconds, peak RSS in MB) of that process alone.

    The peak comes from /usr/bin/time, whose child is a fresh fork: the rusage of a child forked from this
    (larger) harness would report at least the harness's own RSS.
    """
    with tempfile.TemporaryDirectory() as tmp:
        rss_file, err_file = Path(tmp) / "rss", Path(tmp) / "err"
        wrapped = [TIME, "-f", "%M", "-o", str(rss_file), *argv] if TIME else list(argv)
        with open(err_file, "wb") as err:
            start = time.perf_counter()
            proc = subprocess.run(wrapped, stdout=subprocess.DEVNULL, stderr=err, check=False)
            elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            message = err_file.read_text(errors="replace")
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {message}")
        rss_kib = int(rss_file.read_text().split()[-1]) if TIME else float("nan")
    return elapsed, rss_kib / 1024


def durable_copy(src: Path, dest_dir: Path) -> None:
    """What the disk gives a plain copy: the bytes copied and fsynced, one thread, no hashing (a reference)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(f for f in src.rglob("*") if f.is_file()) if src.is_dir() else [src]
    buf = bytearray(4 * MiB)
    view = memoryview(buf)
    for f in files:
        with open(f, "rb", buffering=0) as fin, open(dest_dir / f.name, "wb", buffering=0) as fout:
            while n := fin.readinto(buf):
                fout.write(view[:n])
            os.fsync(fout.fileno())


def median_of(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s for s, _ in samples), max(r for _, r in samples)


def bench_hash(data_dir: Path, sizes: Sizes, runs: int) -> list[Row]:
    model_dir, single = prepare_data(data_dir, sizes)
    aiprov, signer = tool("aiprov"), tool("model_signing")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="aiprov-bench-", dir=data_dir) as scratch_name:
        scratch = Path(scratch_name)
        key = scratch / "key.pem"
        _make_key(key)
        for case, path in (("dir", model_dir), ("file", single)):
            nbytes = tree_size(path)
            label = (
                f"{sizes.dir_files}x{sizes.dir_file_size // MiB} MiB dir"
                if case == "dir"
                else f"1x{sizes.single_size // MiB} MiB file"
            )
            warm([path])
            samples: dict[str, list[tuple[float, float]]] = {
                "model_signing sign key": [],
                "aiprov hash": [],
                "aiprov push": [],
                "copy+fsync, 1 thread": [],
            }
            # Interleave the tools run by run so drift (cache, thermal, neighbours) hits each one equally.
            for i in range(runs):
                sig = scratch / f"model-{case}-{i}.sig"  # outside the model directory
                sign = [signer, "sign", "key", str(path), "--private_key", str(key), "--signature", str(sig)]
                samples["model_signing sign key"].append(timed(sign))
                samples["aiprov hash"].append(timed([aiprov, "hash", str(path)]))
                home = scratch / f"home-{case}-{i}"
                timed([aiprov, "--home", str(home), "init"])  # not counted: a fresh store, so push copies
                samples["aiprov push"].append(
                    timed([aiprov, "--home", str(home), "push", str(path), "-n", f"bench/{case}"])
                )
                shutil.rmtree(home)
                copy_dest = scratch / f"copy-{case}-{i}"
                start = time.perf_counter()
                durable_copy(path, copy_dest)
                samples["copy+fsync, 1 thread"].append((time.perf_counter() - start, float("nan")))
                shutil.rmtree(copy_dest)
            base, base_rss = median_of(samples["model_signing sign key"])
            rows.append(Row("model_signing sign key", label, base, nbytes, base_rss, 1.0, "model-signing"))
            for name, target in (("aiprov hash", HASH_TARGET), ("aiprov push", PUSH_TARGET)):
                secs, rss = median_of(samples[name])
                ratio = secs / base
                # The speed targets are stated for the directory; the single file is reported for context.
                speed_ok = ratio <= target if case == "dir" else True
                rss_target = f"<= {RSS_TARGET_MB:.0f} MB"
                rows.append(
                    Row(
                        name,
                        label,
                        secs,
                        nbytes,
                        rss,
                        ratio,
                        "model-signing",
                        f"<= {target:.1f}x, {rss_target}" if case == "dir" else rss_target,
                        "PASS" if speed_ok and rss <= RSS_TARGET_MB else "MISS",
                    )
                )
            copy_s = statistics.median(s for s, _ in samples["copy+fsync, 1 thread"])
            rows.append(Row("copy+fsync, 1 thread", label, copy_s, nbytes, None, copy_s / base, "model-signing"))
        rows += _fixed_costs(aiprov, signer, scratch, runs)
    return rows


def _fixed_costs(aiprov: str, signer: str, scratch: Path, runs: int) -> list[Row]:
    """What each process costs before it touches a byte: start-up, and a push of a 1 KiB model."""
    tiny = scratch / "tiny-model" / "weights.bin"
    tiny.parent.mkdir()
    tiny.write_bytes(os.urandom(1024))
    helps, pushes = [], []
    for i in range(runs):
        helps.append((timed([aiprov, "--help"]), timed([signer, "--help"])))
        home = scratch / f"home-tiny-{i}"
        timed([aiprov, "--home", str(home), "init"])
        pushes.append(timed([aiprov, "--home", str(home), "push", str(tiny), "-n", "bench/tiny"]))
    a_help, a_rss = median_of([a for a, _ in helps])
    s_help, s_rss = median_of([s for _, s in helps])
    push_s, push_rss = median_of(pushes)
    return [
        Row("model_signing --help", "start-up", s_help, None, s_rss, 1.0, "model-signing"),
        Row("aiprov --help", "start-up", a_help, None, a_rss, a_help / s_help, "model-signing"),
        Row("aiprov push", "1 KiB file (fixed cost)", push_s, None, push_rss),
    ]


def _make_key(path: Path) -> None:
    """An EC P-256 private key in PEM for model_signing, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return
    subprocess.run(
        [openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path)],
        check=True,
        capture_output=True,
    )


# registry ----------------------------------------------------------------------------------------------


def tiny_models(root: Path, count: int) -> list[Path]:
    """`count` one-file models with distinct contents (a few hundred bytes each), reused between runs."""
    out = []
    for i in range(count):
        p = root / "tiny" / f"m{i:04d}" / "model.json"
        if not p.is_file():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps({"model": i, "weights": [i * 0.5, -i, i % 7] * 20}))
        out.append(p)
    return out


def bench_registry(data_dir: Path, sizes: Sizes) -> list[Row]:
    from aiprov.config import Container, Settings
    from aiprov.records import ModelFilter
    from aiprov.services.registry import PushRequest

    models = tiny_models(data_dir, sizes.versions)
    warm(models)
    names = [f"bench/m{i:04d}" for i in range(len(models))]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="aiprov-bench-reg-", dir=data_dir) as scratch_name:
        scratch = Path(scratch_name)
        container = Container(Settings(home=scratch / "home", actor="bench"))
        container.init()
        registry = container.registry
        aiprov_push, seed_push = [], []
        seed = SeedRegistry(scratch / "seed")
        # Side by side, one version at a time, so both see the same growth of their store.
        for path, name in zip(models, names, strict=True):
            start = time.perf_counter()
            registry.push(path, PushRequest(name=name, description="benchmark model", tags=["bench"]))
            aiprov_push.append(time.perf_counter() - start)
            start = time.perf_counter()
            seed.push(path, name)
            seed_push.append(time.perf_counter() - start)
        aiprov_list, seed_list = [], []
        listed = 0
        for _ in range(sizes.list_runs):
            start = time.perf_counter()
            listed = len(registry.list(ModelFilter(name_glob="bench/m*")))
            aiprov_list.append(time.perf_counter() - start)
            start = time.perf_counter()
            seed_count = len(seed.list("bench/m*"))
            seed_list.append(time.perf_counter() - start)
        container.close()
    if listed != len(models) or seed_count != len(models):
        raise BenchError(f"list returned {listed} (aiprov) and {seed_count} (seed) of {len(models)} models")
    n = len(models)
    push_med, seed_med = statistics.median(aiprov_push), statistics.median(seed_push)
    list_med, seed_list_med = statistics.median(aiprov_list), statistics.median(seed_list)
    rows.append(Row("seed JSON file", f"register 1 of {n} versions", seed_med, None, None, 1.0, "seed"))
    rows.append(
        Row(
            "aiprov registry.push",
            f"register 1 of {n} versions",
            push_med,
            None,
            None,
            push_med / seed_med,
            "seed",
            f"<= {VERSION_TARGET_S * 1000:.0f} ms",
            "PASS" if push_med <= VERSION_TARGET_S else "MISS",
        )
    )
    rows.append(Row("seed JSON file", f"list {n} by glob", seed_list_med, None, None, 1.0, "seed"))
    rows.append(
        Row(
            "aiprov registry.list",
            f"list {n} by glob",
            list_med,
            None,
            None,
            list_med / seed_list_med,
            "seed",
            f"<= {LIST_TARGET_S * 1000:.0f} ms",
            "PASS" if list_med <= LIST_TARGET_S else "MISS",
        )
    )
    return rows


class SeedRegistry:
    """The seed's uploader, as the baseline: copy the file, then rewrite one JSON file holding every record.

    No fsync, no transaction, no lineage or events: the seed had none, which is why it is only a baseline.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / "models"
        self.store.mkdir(parents=True)
        self.index = root / "registry.json"
        self.index.write_text("[]")

    def push(self, path: Path, name: str) -> None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, self.store / digest)
        records = json.loads(self.index.read_text())
        version = 1 + sum(1 for r in records if r["name"] == name)
        records.append(
            {
                "name": name,
                "version": version,
                "sha256": digest,
                "size": path.stat().st_size,
                "author": "bench",
                "created_at": time.time(),
                "description": "benchmark model",
            }
        )
        self.index.write_text(json.dumps(records, indent=2))

    def list(self, glob: str) -> list[dict[str, object]]:
        records = json.loads(self.index.read_text())
        latest: dict[str, dict[str, object]] = {}
        for r in records:
            if fnmatch.fnmatchcase(r["name"], glob):
                latest[r["name"]] = r
        return sorted(latest.values(), key=lambda r: str(r["name"]))


# report ----------------------------------------------------------------------------------------------


def format_table(rows: list[Row]) -> str:
    header = ("tool", "case", "median s", "GB/s", "peak RSS MB", "ratio", "vs", "target", "result")
    body = []
    for r in rows:
        body.append(
            (
                r.tool,
                r.case,
                f"{r.seconds:.3f}" if r.seconds >= 0.1 else f"{r.seconds:.6f}",
                f"{r.nbytes / r.seconds / 1e9:.2f}" if r.nbytes else "-",
                f"{r.rss_mb:.0f}" if r.rss_mb is not None and r.rss_mb == r.rss_mb else "-",
                f"{r.ratio:.2f}x" if r.ratio is not None else "-",
                r.versus or "-",
                r.target or "-",
                r.result or "-",
            )
        )
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio_lines(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.ratio is None or r.versus in ("", r.tool) or r.tool.startswith(("model_signing", "seed")):
            continue
        line = f"ratio {r.tool} / {r.versus} [{r.case}]: {r.ratio:.2f}x"
        if r.target:
            line += f"  (target {r.target}) {r.result}"
        out.append(line)
    return out


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_facts() -> str:
    return f"nproc {os.cpu_count()}, CPU {cpu_model()}, Python {platform.python_version()}, {platform.platform()}"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke test")
    parser.add_argument(
        "--only", choices=("hash", "registry", "log", "scan", "cid", "s3", "ipfs", "hf"), help="run one group only"
    )
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data", help="where generated data is kept")
    parser.add_argument("--runs", type=int, help="runs per tool (median reported); default 3, 1 with --quick")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    runs = args.runs or (1 if args.quick else 3)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"aiprov benchmarks {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  ({'quick' if args.quick else 'full'}, "
        f"{runs} run(s) per tool, median)"
    )
    print(machine_facts())
    print(f"load average at the start: {_load()}")
    groups: list[Callable[[], list[Row]]] = []
    if args.only in ("log", "scan", "cid", "s3", "ipfs", "hf"):
        return _peer_benchmark(args.only, args.quick, args.data_dir)
    if args.only in (None, "hash"):
        groups.append(lambda: bench_hash(args.data_dir, sizes, runs))
    if args.only in (None, "registry"):
        groups.append(lambda: bench_registry(args.data_dir, sizes))
    rows: list[Row] = []
    try:
        for group in groups:
            rows += group()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print()
    print(format_table(rows))
    print()
    for line in ratio_lines(rows):
        print(line)
    print(f"\nload average at the end: {_load()}  (other work on the machine skews every row; the ratios less)")
    missed = [r for r in rows if r.result == "MISS"]
    print(f"\n{len(missed)} target(s) missed" if missed else "\nall targets met")
    status = 0
    if args.only is None:
        for group in ("log", "scan", "cid", "s3", "ipfs", "hf"):
            print("\n" + "=" * 40 + f" {group} " + "=" * 40)
            status = max(status, _peer_benchmark(group, args.quick, args.data_dir))
    return status


def _peer_benchmark(group: str, quick: bool, data_dir: Path) -> int:
    """The log against pymerkle, the scanner against picklescan and modelscan, CIDs against hashlib, S3 against
    the local store, pull --from-ipfs against pull, and snapshot_download against static files: own tables."""
    import bench_cid
    import bench_hf
    import bench_ipfs_pull
    import bench_log
    import bench_s3
    import bench_scan

    bench = {
        "log": bench_log,
        "scan": bench_scan,
        "cid": bench_cid,
        "s3": bench_s3,
        "ipfs": bench_ipfs_pull,
        "hf": bench_hf,
    }[group]
    return bench.main([*(["--quick"] if quick else []), "--data-dir", str(data_dir)])


if __name__ == "__main__":
    sys.exit(main())
