"""The transparency log's speed claims, measured side by side with PyPI `pymerkle` on the same entries.

    python benchmarks/bench_log.py [--quick] [--leaves N] [--proofs K] [--data-dir DIR]

1. Appends: N pre-encoded ~150-byte canonical-JSON events go into a fresh SQLite file through
   `aiprov.adapters.db.log.append`, 10,000 per transaction (WAL, synchronous=NORMAL: the registry's own settings).
   The same entries go into pymerkle's `InmemoryTree` (the peer of the target) and its `SqliteTree`, both through
   `append_entries` in the same batches. Wall time (perf_counter) and CPU time (process_time) are both reported.
2. Proofs: a fresh Python process per store opens the file and generates K random inclusion and K random
   consistency proofs (sizes <= N, the same cases for every tool), each timed alone with perf_counter_ns, and
   reports p50/p95/p99. aiprov fetches exactly the nodes a proof needs with `log.nodes`; then (untimed) the
   first 100 proofs of each kind are verified with `verify_inclusion` / `verify_consistency` against roots from
   stored nodes and compared with pymerkle's own roots and paths. pymerkle's `InmemoryTree` is timed in this
   process (it cannot be reopened); its `SqliteTree` in a fresh process like aiprov. A store too slow to finish
   stops each kind after PROOF_BUDGET_S seconds and the report says how many proofs it made.

Exits 0 when everything ran, including when a target is missed (it reports); nonzero only on errors (a tool
failed, or a proof did not verify). `main(argv)` is what benchmarks/run.py calls.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FULL_LEAVES = 1_000_000
QUICK_LEAVES = 20_000
FULL_PROOFS = 2_000
QUICK_PROOFS = 200
BATCH = 10_000  # entries per transaction / per append_entries call, for every tool
SEED = 9162
CROSS_CHECK = 100  # proofs per kind compared with pymerkle's own roots and paths

APPEND_TARGET = 5.0  # aiprov durable appends/s (wall) >= 5x pymerkle InmemoryTree appends per CPU-second
PROOF_TARGET_MS = 1.0  # aiprov proof p95 at N leaves, from a cold process
PROOF_BUDGET_S = 60.0  # per tool and proof kind: a slow store stops early and says how many proofs it made
VERIFY_SAMPLE = 100  # proofs per kind verified in the proof process (untimed)


class BenchError(Exception):
    """A tool failed or a proof did not verify: the run cannot report a fair number."""


# data ----------------------------------------------------------------------------------------------


def make_entries(n: int) -> list[bytes]:
    """`n` distinct, deterministic events as canonical JSON (sorted keys, no spaces), about 150 bytes each."""
    base = 1_767_225_600  # 2026-01-01T00:00:00Z
    out = []
    for i in range(n):
        event = {
            "action": "inference",
            "actor": f"user-{i % 1000}",
            "subject": "sha256:" + hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + i)),
        }
        out.append(json.dumps(event, sort_keys=True, separators=(",", ":")).encode())
    return out


def proof_cases(n: int, count: int, seed: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The same random cases for every tool: (leaf index, size) and (size1, size2), 0-based, sizes <= n."""
    rng = random.Random(seed)
    inclusion = []
    for _ in range(count):
        size = rng.randint(1, n)
        inclusion.append((rng.randrange(size), size))
    consistency = []
    for _ in range(count):
        size2 = rng.randint(1, n)
        consistency.append((rng.randint(1, size2), size2))
    return inclusion, consistency


def percentiles_ms(samples_ns: Sequence[int]) -> tuple[float, float, float]:
    if len(samples_ns) < 2:
        v = samples_ns[0] / 1e6 if samples_ns else float("nan")
        return v, v, v
    q = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return q[49] / 1e6, q[94] / 1e6, q[98] / 1e6


# appends ----------------------------------------------------------------------------------------------


@dataclass
class AppendResult:
    tool: str
    n: int
    wall: float
    cpu: float

    @property
    def per_wall_s(self) -> float:
        return self.n / self.wall

    @property
    def per_cpu_s(self) -> float:
        return self.n / self.cpu


def _timed_batches(tool: str, entries: list[bytes], append: Any) -> AppendResult:
    batches = [entries[i : i + BATCH] for i in range(0, len(entries), BATCH)]
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for batch in batches:
        append(batch)
    return AppendResult(tool, len(entries), time.perf_counter() - wall0, time.process_time() - cpu0)


def append_aiprov(db: Path, entries: list[bytes]) -> AppendResult:
    from aiprov.adapters.db import log
    from aiprov.adapters.db.engine import make_engine, migrate
    from aiprov.adapters.db.registry import SqlRegistry

    registry = SqlRegistry(make_engine(f"sqlite:///{db}"))  # BEGIN IMMEDIATE, as the registry writes
    engine = registry.engine
    migrate(engine)

    def append(batch: list[bytes]) -> None:
        with engine.begin() as conn:
            log.append(conn, batch)

    try:
        result = _timed_batches("aiprov log.append (SQLite)", entries, append)
        with engine.connect() as conn:
            if log.size(conn) != len(entries):
                raise BenchError(f"aiprov log has {log.size(conn)} entries, not {len(entries)}")
    finally:
        engine.dispose()
    return result


def append_pymerkle_memory(entries: list[bytes]) -> tuple[AppendResult, Any]:
    from pymerkle import InmemoryTree

    tree = InmemoryTree()
    result = _timed_batches("pymerkle InmemoryTree", entries, tree.append_entries)
    if tree.get_size() != len(entries):
        raise BenchError(f"pymerkle InmemoryTree has {tree.get_size()} leaves, not {len(entries)}")
    return result, tree


def append_pymerkle_sqlite(db: Path, entries: list[bytes]) -> AppendResult:
    from pymerkle import SqliteTree

    with SqliteTree(str(db)) as tree:
        result = _timed_batches("pymerkle SqliteTree", entries, tree.append_entries)
        if tree.get_size() != len(entries):
            raise BenchError(f"pymerkle SqliteTree has {tree.get_size()} leaves, not {len(entries)}")
    return result


# proofs ----------------------------------------------------------------------------------------------


@dataclass
class ProofResult:
    tool: str
    where: str
    inclusion_ns: list[int]
    consistency_ns: list[int]
    first_ns: int = 0
    verified: int = 0
    note: str = ""
    sample: dict[str, Any] = field(default_factory=dict)


def _worker_aiprov(db: str, n: int, count: int, seed: int, budget: float) -> dict[str, Any]:
    """Run in a fresh process: time proofs straight from the SQLite file, then verify a sample (untimed)."""
    from aiprov.adapters.db import log
    from aiprov.adapters.db.engine import make_engine
    from aiprov.core.merkle import (
        consistency_proof,
        consistency_proof_nodes,
        inclusion_proof,
        inclusion_proof_nodes,
        leaf_hash,
        root,
        root_nodes,
        verify_consistency,
        verify_inclusion,
    )

    inclusion, consistency = proof_cases(n, count, seed)
    engine = make_engine(f"sqlite:///{db}")  # read only: no BEGIN IMMEDIATE
    clock = time.perf_counter_ns
    with engine.connect() as conn:
        if log.size(conn) < n:
            raise BenchError(f"the aiprov log at {db} has {log.size(conn)} entries, fewer than {n}")
        inc_ns, inc_proofs = [], []
        stop = clock() + int(budget * 1e9)
        for index, size in inclusion:
            t0 = clock()
            found = log.nodes(conn, inclusion_proof_nodes(index, size))
            proof = inclusion_proof(index, size, lambda level, i, found=found: found[level, i])
            t1 = clock()
            inc_ns.append(t1 - t0)
            inc_proofs.append(proof)
            if t1 > stop:
                break
        con_ns, con_proofs = [], []
        stop = clock() + int(budget * 1e9)
        for size1, size2 in consistency:
            t0 = clock()
            found = log.nodes(conn, consistency_proof_nodes(size1, size2))
            proof = consistency_proof(size1, size2, lambda level, i, found=found: found[level, i])
            t1 = clock()
            con_ns.append(t1 - t0)
            con_proofs.append(proof)
            if t1 > stop:
                break

        roots: dict[int, bytes] = {}

        def root_of(size: int) -> bytes:
            if size not in roots:
                found = log.nodes(conn, root_nodes(size))
                roots[size] = root(size, lambda level, i: found[level, i])
            return roots[size]

        # Untimed: a sample of each kind, verified against roots computed from stored nodes.
        for (index, size), proof in zip(inclusion, inc_proofs[:VERIFY_SAMPLE], strict=False):
            data, stored = log.entry(conn, index)
            if leaf_hash(data) != stored:
                raise BenchError(f"aiprov entry {index}: stored leaf hash does not match its data")
            verify_inclusion(stored, index, size, proof, root_of(size))
        for (size1, size2), proof in zip(consistency, con_proofs[:VERIFY_SAMPLE], strict=False):
            verify_consistency(size1, size2, proof, root_of(size1), root_of(size2))
    engine.dispose()
    k = min(CROSS_CHECK, count)
    return {
        "inclusion_ns": inc_ns,
        "consistency_ns": con_ns,
        "verified": min(len(inc_proofs), VERIFY_SAMPLE) + min(len(con_proofs), VERIFY_SAMPLE),
        "sample": {
            "inclusion": [[i, s, [h.hex() for h in p]] for (i, s), p in zip(inclusion[:k], inc_proofs, strict=False)],
            "consistency": [
                [a, b, [h.hex() for h in p]] for (a, b), p in zip(consistency[:k], con_proofs, strict=False)
            ],
            "roots": {str(s): r.hex() for s, r in roots.items() if s in _sample_sizes(inclusion[:k], consistency[:k])},
        },
    }


def _sample_sizes(inclusion: list[tuple[int, int]], consistency: list[tuple[int, int]]) -> set[int]:
    return {s for _, s in inclusion} | {a for a, _ in consistency} | {b for _, b in consistency}


def _worker_pymerkle_sqlite(db: str, n: int, count: int, seed: int, budget: float) -> dict[str, Any]:
    """Run in a fresh process: pymerkle SqliteTree proofs, each kind stopped after `budget` seconds."""
    from pymerkle import SqliteTree

    inclusion, consistency = proof_cases(n, count, seed)
    clock = time.perf_counter_ns
    out: dict[str, Any] = {}
    with SqliteTree(db) as tree:
        if tree.get_size() < n:
            raise BenchError(f"the pymerkle log at {db} has {tree.get_size()} leaves, fewer than {n}")
        for kind, cases, prove in (
            ("inclusion", inclusion, lambda i, s: tree.prove_inclusion(i + 1, s)),
            ("consistency", consistency, tree.prove_consistency),
        ):
            samples: list[int] = []
            stop = clock() + int(budget * 1e9)
            for a, b in cases:
                t0 = clock()
                prove(a, b)
                t1 = clock()
                samples.append(t1 - t0)
                if t1 > stop:
                    break
            out[f"{kind}_ns"] = samples
    out["verified"] = 0
    return out


def run_worker(kind: str, db: Path, n: int, count: int, seed: int, budget: float) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        str(db),
        str(n),
        str(count),
        str(seed),
        str(budget),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"the {kind} proof process exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def proofs_pymerkle_memory(tree: Any, n: int, count: int, seed: int) -> ProofResult:
    inclusion, consistency = proof_cases(n, count, seed)
    clock = time.perf_counter_ns
    inc_ns, con_ns = [], []
    for index, size in inclusion:
        t0 = clock()
        tree.prove_inclusion(index + 1, size)
        inc_ns.append(clock() - t0)
    for size1, size2 in consistency:
        t0 = clock()
        tree.prove_consistency(size1, size2)
        con_ns.append(clock() - t0)
    return ProofResult("pymerkle InmemoryTree", "in process", inc_ns, con_ns)


def cross_check(sample: dict[str, Any], tree: Any, entries: list[bytes]) -> int:
    """Compare aiprov's proofs and roots with pymerkle's (an independent RFC 9162 implementation)."""
    from pymerkle import InvalidProof, verify_consistency

    from aiprov.core.merkle import leaf_hash
    from aiprov.core.merkle import verify_consistency as aiprov_verify_consistency
    from aiprov.errors import VerificationError

    roots = {int(s): bytes.fromhex(r) for s, r in sample["roots"].items()}
    for size, r in roots.items():
        if tree.get_root(size) != r:
            raise BenchError(f"aiprov root of size {size} differs from pymerkle's")
    checked = 0
    for index, size, proof in sample["inclusion"]:
        peer = tree.prove_inclusion(index + 1, size)
        if peer.path[0] != leaf_hash(entries[index]) or [h.hex() for h in peer.path[1:]] != proof:
            raise BenchError(f"aiprov inclusion proof of leaf {index} in size {size} differs from pymerkle's")
        checked += 1
    for size1, size2, proof in sample["consistency"]:
        r1, r2 = tree.get_root(size1), tree.get_root(size2)
        try:
            aiprov_verify_consistency(size1, size2, [bytes.fromhex(h) for h in proof], r1, r2)
        except VerificationError as e:
            raise BenchError(f"aiprov consistency proof {size1} -> {size2} fails on pymerkle's roots: {e}") from e
        try:
            verify_consistency(r1, r2, tree.prove_consistency(size1, size2))
        except InvalidProof as e:
            raise BenchError(f"pymerkle's own consistency proof {size1} -> {size2} fails: {e}") from e
        checked += 1
    return checked


# report ----------------------------------------------------------------------------------------------


def _table(header: Sequence[str], body: list[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(appends: list[AppendResult], proofs: list[ProofResult], n: int, count: int) -> tuple[list[str], int]:
    """The printed report and the number of missed targets."""
    out: list[str] = []
    by_tool = {a.tool: a for a in appends}
    aiprov_a, peer_a = by_tool["aiprov log.append (SQLite)"], by_tool["pymerkle InmemoryTree"]
    append_ratio = aiprov_a.per_wall_s / peer_a.per_cpu_s
    body = []
    for a in appends:
        is_aiprov = a is aiprov_a
        body.append(
            (
                a.tool,
                f"{a.n:,}",
                f"{a.wall:.2f}",
                f"{a.cpu:.2f}",
                f"{a.per_wall_s:,.0f}",
                f"{a.per_cpu_s:,.0f}",
                f"{a.per_wall_s / peer_a.per_cpu_s:.2f}x",
                f">= {APPEND_TARGET:.0f}x" if is_aiprov else "-",
                _verdict(append_ratio >= APPEND_TARGET) if is_aiprov else "-",
            )
        )
    out.append(f"Appends ({BATCH:,} entries per transaction / append_entries call)")
    out.append(
        _table(
            ("tool", "entries", "wall s", "CPU s", "appends/s (wall)", "appends/CPU-s", "vs peer", "target", "result"),
            body,
        )
    )
    out.append("  vs peer = this tool's appends/s (wall) / pymerkle InmemoryTree appends per CPU-second")
    out.append("")
    body = []
    missed = int(append_ratio < APPEND_TARGET)
    peer = next(p for p in proofs if p.tool == "pymerkle InmemoryTree")
    peer_p95 = {
        "inclusion": percentiles_ms(peer.inclusion_ns)[1],
        "consistency": percentiles_ms(peer.consistency_ns)[1],
    }
    ratios = []
    for p in proofs:
        for kind, samples in (("inclusion", p.inclusion_ns), ("consistency", p.consistency_ns)):
            p50, p95, p99 = percentiles_ms(samples)
            is_aiprov = p.tool.startswith("aiprov")
            ok = p95 <= PROOF_TARGET_MS
            missed += int(is_aiprov and not ok)
            body.append(
                (
                    p.tool,
                    kind,
                    p.where,
                    f"{len(samples):,}",
                    f"{p50:.4f}",
                    f"{p95:.4f}",
                    f"{p99:.4f}",
                    f"{max(samples) / 1e6:.3f}",
                    f"{p95 / peer_p95[kind]:.3f}x",
                    f"p95 <= {PROOF_TARGET_MS:g} ms" if is_aiprov else "-",
                    _verdict(ok) if is_aiprov else "-",
                )
            )
            if p is not peer:
                ratios.append(
                    f"ratio {p.tool} / pymerkle InmemoryTree [{kind} proof p95, {n:,} leaves]: "
                    f"{p95 / peer_p95[kind]:.3f}x"
                )
    out.append(f"Proofs at {n:,} leaves ({count:,} random cases per kind, same cases for every tool; ms per proof)")
    out.append(
        _table(
            (
                "tool",
                "proof",
                "process",
                "proofs",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "p95 vs peer",
                "target",
                "result",
            ),
            body,
        )
    )
    notes = [p.note for p in proofs if p.note]
    out.extend(f"  {note}" for note in notes)
    out.append("")
    out.append(
        f"ratio aiprov log.append / pymerkle InmemoryTree [append {n:,}]: {append_ratio:.2f}x "
        f"(aiprov appends/s wall / pymerkle appends per CPU-second)  (target >= {APPEND_TARGET:.0f}x) "
        f"{_verdict(append_ratio >= APPEND_TARGET)}"
    )
    out.append(
        f"ratio aiprov log.append / pymerkle InmemoryTree [append {n:,}, wall / wall]: "
        f"{aiprov_a.per_wall_s / peer_a.per_wall_s:.2f}x"
    )
    if "pymerkle SqliteTree" in by_tool:
        sq = by_tool["pymerkle SqliteTree"]
        out.append(
            f"ratio aiprov log.append / pymerkle SqliteTree [append {sq.n:,}, wall / wall]: "
            f"{aiprov_a.per_wall_s / sq.per_wall_s:.2f}x"
        )
    out.extend(ratios)
    for p in proofs:
        if p.tool.startswith("aiprov"):
            for kind, samples in (("inclusion", p.inclusion_ns), ("consistency", p.consistency_ns)):
                p95 = percentiles_ms(samples)[1]
                out.append(
                    f"target aiprov {kind} proof p95 at {n:,} leaves: {p95:.4f} ms "
                    f"(target <= {PROOF_TARGET_MS:g} ms) {_verdict(p95 <= PROOF_TARGET_MS)}"
                )
    return out, missed


def machine_facts() -> str:
    import platform
    import sqlite3

    from run import cpu_model  # the harness's own reading of the machine

    cpu = cpu_model()
    try:
        from importlib.metadata import version

        peer = f"pymerkle {version('pymerkle')}, SQLAlchemy {version('sqlalchemy')}"
    except Exception:
        peer = "pymerkle ?"
    return (
        f"nproc {os.cpu_count()}, CPU {cpu}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{peer}"
    )


# main ----------------------------------------------------------------------------------------------


def bench(n: int, count: int, data_dir: Path, pymerkle_sqlite: bool) -> int:
    print(f"aiprov log benchmark {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  ({n:,} leaves, {count:,} proofs per kind)")
    print(machine_facts())
    t = time.perf_counter()
    entries = make_entries(n)
    avg = sum(map(len, entries)) / n
    print(f"{n:,} entries pre-encoded ({avg:.0f} bytes each on average) in {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory(prefix="aiprov-bench-log-", dir=data_dir) as scratch_name:
        scratch = Path(scratch_name)
        aiprov_db, peer_db = scratch / "aiprov.sqlite", scratch / "pymerkle.sqlite"
        appends = [append_aiprov(aiprov_db, entries)]
        print(f"  aiprov appended in {appends[-1].wall:.2f} s; SQLite file {_db_mb(aiprov_db):.0f} MB")
        result, tree = append_pymerkle_memory(entries)
        appends.append(result)
        print(f"  pymerkle InmemoryTree appended in {result.wall:.2f} s")
        if pymerkle_sqlite:
            appends.append(append_pymerkle_sqlite(peer_db, entries))
            print(f"  pymerkle SqliteTree appended in {appends[-1].wall:.2f} s; file {_db_mb(peer_db):.0f} MB")

        raw = run_worker("aiprov", aiprov_db, n, count, SEED, PROOF_BUDGET_S)
        aiprov_p = ProofResult(
            "aiprov log (SQLite)",
            "fresh process",
            raw["inclusion_ns"],
            raw["consistency_ns"],
            verified=raw["verified"],
            sample=raw["sample"],
        )
        checked = cross_check(aiprov_p.sample, tree, entries)
        aiprov_p.note = (
            f"aiprov: {aiprov_p.verified:,} proofs verified (verify_inclusion / verify_consistency "
            f"against roots from stored nodes); {checked} also matched pymerkle's roots and paths"
        )
        if min(len(aiprov_p.inclusion_ns), len(aiprov_p.consistency_ns)) < count:
            aiprov_p.note += (
                f"; stopped each kind after {PROOF_BUDGET_S:.0f} s ({len(aiprov_p.inclusion_ns):,} "
                f"inclusion, {len(aiprov_p.consistency_ns):,} consistency proofs done)"
            )
        print(f"  aiprov proofs done and verified; {checked} cross-checked with pymerkle")
        proofs = [aiprov_p, proofs_pymerkle_memory(tree, n, count, SEED)]
        del tree
        if pymerkle_sqlite:
            raw = run_worker("pymerkle-sqlite", peer_db, n, count, SEED, PROOF_BUDGET_S)
            p = ProofResult("pymerkle SqliteTree", "fresh process", raw["inclusion_ns"], raw["consistency_ns"])
            if min(len(p.inclusion_ns), len(p.consistency_ns)) < count:
                p.note = (
                    f"pymerkle SqliteTree: stopped each kind after {PROOF_BUDGET_S:.0f} s "
                    f"({len(p.inclusion_ns):,} inclusion, {len(p.consistency_ns):,} consistency proofs done)"
                )
            proofs.append(p)
    lines, missed = report(appends, proofs, n, count)
    print()
    print("\n".join(lines))
    print(f"\n{missed} target(s) missed" if missed else "\nall targets met")
    return 0


def _db_mb(db: Path) -> float:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        kind, db, n, count, seed, budget = argv[1:7]
        if kind == "aiprov":
            out = _worker_aiprov(db, int(n), int(count), int(seed), float(budget))
        else:
            out = _worker_pymerkle_sqlite(db, int(n), int(count), int(seed), float(budget))
        json.dump(out, sys.stdout)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_LEAVES:,} leaves, {QUICK_PROOFS} proofs")
    parser.add_argument("--leaves", type=int, help=f"log size (default {FULL_LEAVES:,}; {QUICK_LEAVES:,} with --quick)")
    parser.add_argument("--proofs", type=int, help=f"proofs per kind (default {FULL_PROOFS:,}; {QUICK_PROOFS} quick)")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data", help="where the scratch databases go")
    parser.add_argument("--no-pymerkle-sqlite", action="store_true", help="skip pymerkle's SqliteTree")
    args = parser.parse_args(argv)
    n = args.leaves or (QUICK_LEAVES if args.quick else FULL_LEAVES)
    count = args.proofs or (QUICK_PROOFS if args.quick else FULL_PROOFS)
    if n < 1 or count < 1:
        parser.error("--leaves and --proofs must be positive")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return bench(n, count, args.data_dir, not args.no_pymerkle_sqlite)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"error: {e} (install the dev extra: pip install -e '.[dev]')", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
