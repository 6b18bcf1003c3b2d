"""A hub at scale on PostgreSQL: reads at 1,000,000 versions, and pushes per second with 1, 2 and 4 servers.

    python benchmarks/bench_scale.py --postgres URL [--quick] [--models N] [--versions-per-model K] [--runs R]
                                     [--servers 1,2,4] [--push-seconds S] [--clients C] [--only reads|pushes]

1. Reads (in process, through `container.registry`, the calls the API's list and show routes make): N models of
   K versions each (100,000 x 10 = 1,000,000 versions; bulk-inserted as rows, then ANALYZE) in a fresh schema.
   Each query runs R times with a different random argument each run, after a warm-up; p50 and p95 reported:
   a page of 50 by owner glob (`ls --name 'o123/*'`), by tag, by author, by licence and owner, a search
   (`ls --search m-04217`), and `show OWNER/NAME@V`. Floors in the same run: `SELECT 1` (a round trip) and a
   version fetched by primary key. Targets: ls and search p95 <= 50 ms, show p95 <= 10 ms.
2. Pushes (over HTTP, as real clients push: a token, one blob upload, one commit): for each server count S, a
   fresh schema and home, S `aiprov serve` processes on one PostgreSQL and one blob folder, and C client threads
   pushing distinct small models round-robin over the servers for the given seconds; pushes per second and the
   ratio to one server. On a 2-core machine the clients, the servers and PostgreSQL share the cores, so the ratio
   says how much the serialised log append costs, not how far more hosts would go.

Exits 0 when it ran, misses included (it reports, it does not judge).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bulk_models, percentile, postgres_schema, serve

LS_TARGET_MS = 50.0
SHOW_TARGET_MS = 10.0
FULL = {"models": 100_000, "versions": 10, "runs": 200, "seconds": 20.0}
QUICK = {"models": 2_000, "versions": 5, "runs": 20, "seconds": 4.0}


def timed(fn: Callable[[int], Any], runs: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    for _ in range(3):
        fn(rng.randrange(1, 10**9))
    out = []
    for _ in range(runs):
        arg = rng.randrange(1, 10**9)
        start = time.perf_counter()
        fn(arg)
        out.append((time.perf_counter() - start) * 1000)
    return out


def reads(url: str, models: int, per_model: int, runs: int) -> list[str]:
    from sqlalchemy import text

    from aiprov.config import Container, Settings
    from aiprov.records import ModelFilter

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        c = Container(Settings(home=Path(tmp) / "home", database_url=url, actor="root", workers=1))
        c.init()
        t0 = time.perf_counter()
        bulk_models(c.db.engine, models, per_model, say=lambda s: print(f"# {s}", flush=True))
        total = models * per_model
        print(f"# {total:,} versions of {models:,} models written in {time.perf_counter() - t0:.0f} s", flush=True)
        reg, engine = c.registry, c.db.engine

        def one(sql: str, **params: Any) -> Callable[[int], Any]:
            def run(_: int) -> Any:
                with engine.connect() as conn:
                    return conn.execute(text(sql), params or {"id": random.randrange(1, total + 1)}).all()

            return run

        def name(i: int) -> str:
            m = i % models + 1
            return f"o{m % 500}/m-{m:06d}"

        def page(**f: Any) -> Callable[[int], Any]:
            """A page of 50 models matching `f`, with `{o}` in a value replaced by a random owner."""
            return lambda i: reg.page(ModelFilter(**{k: v.format(o=f"o{i % 500}") for k, v in f.items()}))

        ls, show = LS_TARGET_MS, SHOW_TARGET_MS
        cases: dict[str, tuple[Callable[[int], Any], float | None]] = {
            "floor: SELECT 1": (one("SELECT 1", x=1), None),
            "floor: version by primary key": (one("SELECT * FROM versions WHERE id = :id"), None),
            "ls --name 'oN/*' (page of 50)": (page(name_glob="{o}/*"), ls),
            "ls --tag demo (page of 50)": (lambda i: reg.page(ModelFilter(tag="demo"), offset=i % 200 * 50), ls),
            "ls --author oN (page of 50)": (page(author="{o}"), ls),
            "ls --license mit --owner oN": (page(license="mit", owner="{o}"), ls),
            "ls --search m-0NNNN": (lambda i: reg.page(ModelFilter(search=f"m-{i % models:06d}"[:7])), ls),
            "show OWNER/NAME@V": (lambda i: reg.show(f"{name(i)}@{i % per_model + 1}"), show),
        }
        for label, (fn, target) in cases.items():
            t = timed(fn, runs, hash(label) & 0xFFFF)
            p95 = percentile(t, 0.95)
            verdict = "" if target is None else ("PASS" if p95 <= target else "MISS")
            goal = "" if target is None else f"target p95 <= {target:.0f} ms"
            p50 = statistics.median(t)
            lines.append(f"{total:,} versions  {label:32} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  {goal} {verdict}")
            print(lines[-1], flush=True)
        c.close()
    return lines


def pushes(url: str, servers: int, clients: int, seconds: float) -> float:
    """Pushes per second with `servers` server processes on one database and one blob folder."""
    import httpx

    from aiprov.config import Container, Settings

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        c = Container(Settings(home=home, database_url=url, actor="root", workers=1))
        c.init()
        token = c.accounts.add_user("bench").token
        c.close()
        env = {**os.environ, "AIPROV_DATABASE_URL": url, "AIPROV_WORKERS": "1"}
        env.pop("AIPROV_HOME", None)
        procs, urls = [], []
        try:
            for _ in range(servers):
                process, address = serve(home, env)
                procs.append(process)
                urls.append(address)
            done = [0] * clients
            failed: list[str] = []
            stop_at = time.monotonic() + seconds
            headers = {"Authorization": f"Bearer {token}"}

            def client(n: int) -> None:
                with httpx.Client(timeout=60, headers=headers) as http:
                    k = 0
                    while time.monotonic() < stop_at:
                        base = urls[(n + k) % len(urls)]
                        data = f"client {n} push {k} ".encode() * 200
                        digest = "sha256:" + hashlib.sha256(data).hexdigest()
                        r = http.put(f"{base}/api/v1/blobs/{digest}", content=data)
                        files = [{"path": "model.bin", "size": len(data), "sha256": digest}]
                        r = http.post(f"{base}/api/v1/models/bench/m{n}/versions", json={"files": files})
                        if r.status_code not in (200, 201):
                            failed.append(r.text[:200])
                            return
                        done[n] += 1
                        k += 1

            threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
            start = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - start
            if failed:
                raise RuntimeError(f"a push failed: {failed[0]}")
            return sum(done) / elapsed
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", required=True, help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--models", type=int)
    parser.add_argument("--versions-per-model", type=int)
    parser.add_argument("--runs", type=int, help="timed runs per read query")
    parser.add_argument("--servers", default="1,2,4", help="server counts to push through, comma-separated")
    parser.add_argument("--clients", type=int, default=8, help="concurrent pushing clients")
    parser.add_argument("--push-seconds", type=float)
    parser.add_argument("--only", choices=["reads", "pushes"])
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.only in (None, "reads"):
        url, drop = postgres_schema(args.postgres)
        try:
            reads(url, args.models or int(sizes["models"]), args.versions_per_model or int(sizes["versions"]),
                  args.runs or int(sizes["runs"]))  # fmt: skip
        finally:
            drop()
    if args.only in (None, "pushes"):
        rates: dict[int, list[float]] = {}
        counts = [int(s) for s in args.servers.split(",")]
        for _ in range(1 if args.quick else 3):  # interleaved, medians of 3
            for n in counts:
                url, drop = postgres_schema(args.postgres)
                try:
                    rates.setdefault(n, []).append(pushes(url, n, args.clients, args.push_seconds or sizes["seconds"]))
                finally:
                    drop()
        base = statistics.median(rates[counts[0]])
        for n in counts:
            rate = statistics.median(rates[n])
            print(f"pushes with {n} server(s), {args.clients} clients: {rate:7.1f} /s  ratio to {counts[0]}: "
                  f"{rate / base:.2f}x  (runs {', '.join(f'{r:.1f}' for r in rates[n])})", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
