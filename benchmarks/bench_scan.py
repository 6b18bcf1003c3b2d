"""Scan throughput and detection, side by side with picklescan and modelscan in the same run.

    python benchmarks/bench_scan.py [--quick] [--runs N] [--data-dir DIR]

1. Throughput: a large RandomForest joblib file (>= 300 MB; --quick: ~20 MB), generated once into
   benchmarks/.data (deep trees on random data, 10 classes, so the node and value arrays are big), and the
   same forest as a protocol 5 pickle (arrays in-band), which every tool must walk to the end. Each tool
   runs in this process through its Python API, in turn, run after run (interleaved so drift hits each alike),
   after one untimed warm-up that also fills the page cache: `aiprov.scanning.scan_file`,
   `picklescan.scanner.scan_file_path`, `modelscan.modelscan.ModelScan().scan`. Reported: median seconds, MB/s,
   ratio to picklescan, and each tool's verdict on the (benign) file. aiprov memory-maps the file and skips array
   bytes without reading them (they are never interpreted); `aiprov-read` scans the same file through
   `scan_stream` over a plain file object, reading every byte; the other tools read the whole file. On the joblib
   file picklescan and modelscan stop at the first array (they cannot parse joblib's layout) and report an
   error, so their time there is not a complete scan; the table says so, and the target is judged on the
   pickle, where every tool reads to the end.
2. Detection: every malicious sample of tests/scanning/scan_corpus.py, written under a name the other tools
   recognise (.pkl, .joblib, .pt, .npy, .npz), scanned by each tool. A sample counts as flagged when the tool
   reports an issue (an error without an issue is not a flag). Samples some tool misses are listed.

Target: aiprov at least as fast as picklescan (PASS/MISS). Exits 0 when everything ran, including a MISS;
nonzero only when a tool could not run at all. `main(argv)` is what benchmarks/run.py can call.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
FULL_MB = 300
QUICK_MB = 20


def make_forest(path: Path, min_mb: int) -> None:
    """A RandomForest joblib of at least `min_mb` MB: trees fully grown on random labels (one leaf per sample)."""
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    n = 40_000 if min_mb <= QUICK_MB else 120_000
    x = rng.random((n, 8), dtype=np.float32)
    y = rng.integers(0, 10, n)
    trees = 1
    while True:
        model = RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=-1).fit(x, y)
        joblib.dump(model, path)
        size = path.stat().st_size
        if size >= min_mb * 1e6:
            return
        trees = max(trees + 1, int(trees * min_mb * 1e6 / size * 1.05) + 1)


def make_pickle(joblib_path: Path, path: Path) -> None:
    """The same forest as a protocol 5 pickle (loading our own generated file, never an upload)."""
    import pickle

    import joblib

    with open(path, "wb") as f:
        pickle.dump(joblib.load(joblib_path), f, protocol=5)


def tools() -> dict[str, Callable[[Path], tuple[bool, str]]]:
    """name -> scan(path) returning (flagged, note)."""
    from modelscan.modelscan import ModelScan
    from picklescan.scanner import scan_file_path

    from aiprov.scanning import scan_file, scan_stream

    def aiprov(path: Path) -> tuple[bool, str]:
        report = scan_file(path)
        return report.verdict == "unsafe", report.verdict

    def picklescan(path: Path) -> tuple[bool, str]:
        result = scan_file_path(str(path))
        return result.issues_count > 0, "error" if result.scan_err else ("flagged" if result.issues_count else "ok")

    def modelscan(path: Path) -> tuple[bool, str]:
        result = ModelScan().scan(str(path))
        issues = result["summary"]["total_issues"]
        skipped = result["summary"]["skipped"]["total_skipped"]
        note = "flagged" if issues else "error" if result["errors"] else "skipped" if skipped else "ok"
        return issues > 0, note

    def aiprov_stream(path: Path) -> tuple[bool, str]:
        with open(path, "rb") as f:  # no mmap: every byte goes through read(), as for an upload body
            report = scan_stream(path.name, f)
        return report.verdict == "unsafe", report.verdict

    return {"aiprov": aiprov, "aiprov-read": aiprov_stream, "picklescan": picklescan, "modelscan": modelscan}


def throughput(path: Path, runs: int, scanners: dict[str, Callable[[Path], tuple[bool, str]]]) -> dict[str, float]:
    size_mb = path.stat().st_size / 1e6
    times: dict[str, list[float]] = {name: [] for name in scanners}
    notes = {name: scan(path)[1] for name, scan in scanners.items()}  # warm-up, untimed
    for _ in range(runs):
        for name, scan in scanners.items():
            t = time.perf_counter()
            scan(path)
            times[name].append(time.perf_counter() - t)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"\nthroughput: {path.name}, {size_mb:.0f} MB, median of {runs} run(s)")
    print(f"{'tool':<12}{'seconds':>10}{'MB/s':>12}{'vs picklescan':>16}  verdict on the benign file")
    for name, secs in medians.items():
        ratio = medians["picklescan"] / secs
        note = notes[name] + (" (stopped early: not a complete scan)" if notes[name] == "error" else "")
        print(f"{name:<12}{secs:>10.4f}{size_mb / secs:>12.0f}{ratio:>15.2f}x  {note}")
    return medians


def suffix_for(name: str) -> str:
    if name.startswith("torch") or name == "zip_with_pickle_prefix":
        return ".pt"
    if name.startswith("joblib"):
        return ".joblib"
    if name.startswith("npz"):
        return ".npz"
    if name.startswith("npy"):
        return ".npy"
    return ".pkl"


def detection(workdir: Path, scanners: dict[str, Callable[[Path], tuple[bool, str]]]) -> dict[str, int]:
    sys.path.insert(0, str(HERE.parent / "tests" / "scanning"))
    import scan_corpus

    samples = scan_corpus.malicious(str(workdir / "marker"), str(workdir))
    flagged: dict[str, int] = dict.fromkeys(scanners, 0)
    missed_rows = []
    for name, data in sorted(samples.items()):
        path = workdir / f"{name}{suffix_for(name)}"
        path.write_bytes(data)
        row = {}
        for tool, scan in scanners.items():
            try:
                hit, note = scan(path)
            except Exception as e:  # a baseline crashing on a sample is a result, not a benchmark failure
                hit, note = False, f"crash: {type(e).__name__}"
            flagged[tool] += hit
            row[tool] = (hit, note)
        if not all(hit for hit, _ in row.values()):
            missed_rows.append((name, row))
    print(f"\ndetection: {len(samples)} malicious samples from tests/scanning/scan_corpus.py")
    for tool, n in flagged.items():
        print(f"{tool:<12} flagged {n}/{len(samples)}")
    if missed_rows:
        print("\nsamples some tool missed (FLAG = reported, miss = not reported, with the tool's own note):")
        for name, row in missed_rows:
            cells = "  ".join(f"{t}={'FLAG' if hit else 'miss'}({note})" for t, (hit, note) in row.items())
            print(f"  {name:<40} {cells}")
    if (workdir / "marker").exists():
        raise RuntimeError("a payload ran: the marker file exists")
    return flagged


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"a ~{QUICK_MB} MB model and one run: a smoke test")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per tool (default 3, quick 1)")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # picklescan and modelscan log every finding
    min_mb = QUICK_MB if args.quick else FULL_MB
    runs = args.runs or (1 if args.quick else 3)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    model = args.data_dir / f"forest-{min_mb}mb.joblib"
    if not model.exists():
        print(f"generating {model} (once) ...", flush=True)
        partial = model.with_suffix(".partial")
        make_forest(partial, min_mb)
        partial.rename(model)
    try:
        scanners = tools()
    except ImportError as e:
        print(f"error: {e}; pip install picklescan modelscan", file=sys.stderr)
        return 2
    as_pickle = model.with_suffix(".pkl")
    if not as_pickle.exists():
        make_pickle(model, as_pickle)
    throughput(model, runs, scanners)
    medians = throughput(as_pickle, runs, scanners)
    detection_scanners = {k: v for k, v in scanners.items() if k != "aiprov-read"}
    workdir = args.data_dir / "scan-corpus"
    workdir.mkdir(exist_ok=True)
    for old in workdir.iterdir():
        old.unlink()
    detection(workdir, detection_scanners)
    for tool in ("aiprov", "aiprov-read"):
        ratio = medians["picklescan"] / medians[tool]
        verdict = "PASS" if ratio >= 1.0 else "MISS"
        print(f"ratio {tool}/picklescan speed on the pickle {ratio:.1f}x (target >= 1.0x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    sys.exit(main())
