"""Server time to render the web pages of a large hub, and the weight of a model page.

    python benchmarks/bench_web.py [--quick] [--models N] [--versions K] [--runs R] [--postgres URL]

The hub holds N models with one version each (100,000; bulk-inserted as rows, since pushing them one by one
would measure the push, not the pages) and one model, `big/model`, with K versions pushed through
`registry.push` (1,000), so each has its registration event in the log as a real one does. Then, in process
over `create_app(container)` (Starlette's TestClient: the server's own time, routing and rendering included,
no network), each page is requested R times after a warm-up and the p50/p95 of the wall times are reported:

- the models list: `/models` (page 1, by name), `/models?q=m-0420` (a search, from the trigram index),
  `/models?q=m-` (a 2-character search: a scan), `/models?sort=updated&page=50`, sorted by downloads, by reputation
  and by best accuracy, and filtered by a file format;
- the model page of `big/model` (its latest version of K) and of `big/one` (pushed once, after them).

Floors, in the same run: `/healthz` (the framework) and `/api/v1/models/big/model` (the JSON the API serves
of the same version, one service call), so a slow machine shows as slow floors.

Page weight: the bytes of the `big/model` page and of everything it loads (its stylesheet, script, icon),
before compression. Targets: p95 <= 50 ms per page, weight <= 200 KB. Run on SQLite, and on PostgreSQL when
`--postgres URL` is given (a fresh schema, dropped afterwards). Exits 0 when it ran, misses included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import bulk_models, postgres_schema

P95_TARGET_MS = 50.0
WEIGHT_TARGET_KB = 200.0
FULL_MODELS, QUICK_MODELS = 100_000, 2_000
FULL_VERSIONS, QUICK_VERSIONS = 1_000, 50
FULL_RUNS, QUICK_RUNS = 50, 10


def _big_model(container: Any, k: int, work: Path) -> None:
    from aiprov.services.registry import PushRequest

    registry = container.registry
    for v in range(k):
        root = work / f"v{v}"
        root.mkdir()
        (root / "README.md").write_text(f"# Big model, version {v + 1}\n\nThe same model, pushed {k} times.\n")
        (root / "weights.bin").write_bytes(v.to_bytes(4, "big") * 64)
        registry.push(
            root, PushRequest(name="big/model", description="a model with many versions", tags=["big"]), actor="big"
        )
    (work / "one").mkdir()
    (work / "one" / "model.bin").write_bytes(b"one version")
    registry.push(work / "one", PushRequest(name="big/one"), actor="big")


def _times(client: Any, path: str, runs: int) -> list[float]:
    for _ in range(3):
        assert client.get(path).status_code == 200, path
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (path, r.text[:500])
    return out


def _weight(client: Any, path: str) -> tuple[int, int]:
    """(bytes of the page, bytes of the page and every asset it links), before compression."""
    import re

    html = client.get(path).content
    assets = set(re.findall(rb'(?:href|src)="(/-/static/[^"]+)"', html))
    return len(html), len(html) + sum(len(client.get(a.decode()).content) for a in assets)


def run(database_url: str | None, models: int, versions: int, runs: int, label: str) -> list[str]:
    from fastapi.testclient import TestClient

    from aiprov.api import create_app
    from aiprov.config import Container, Settings

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        container = Container(Settings(home=work / "home", database_url=database_url, actor="root", workers=1))
        container.init()
        t0 = time.perf_counter()
        bulk_models(container.db.engine, models)
        _big_model(container, versions, work)
        print(
            f"# {label}: {models:,} models + big/model with {versions:,} versions in {time.perf_counter() - t0:.0f} s"
        )
        client = TestClient(create_app(container))
        lines = []
        pages = {
            "floor: /healthz": "/healthz",
            "floor: API show of big/model": "/api/v1/models/big/model",
            "models list, page 1": "/models",
            "models list, search": "/models?q=m-0420",
            "models list, updated, page 50": "/models?sort=updated&page=50",
            "models list, search of 2 chars (scan)": "/models?q=m-",
            "models list, by downloads": "/models?sort=downloads",
            "models list, by reputation": "/models?sort=reputation",
            "models list, by best accuracy": "/models?sort=metric:accuracy",
            "models list, format filter": "/models?format=safetensors",
            f"model page, {versions} versions": "/models/big/model",
            "model page, 1 version": "/models/big/one",
        }
        for name, path in pages.items():
            t = sorted(_times(client, path, runs))
            p95 = t[max(0, int(len(t) * 0.95) - 1)]
            verdict = "" if name.startswith("floor") else "PASS" if p95 <= P95_TARGET_MS else "MISS"
            lines.append(
                f"{label:10} {name:38} p50 {statistics.median(t):7.1f} ms  p95 {p95:7.1f} ms  "
                f"target <= {P95_TARGET_MS:.0f} ms  {verdict}"
            )
        page, total = _weight(client, "/models/big/model")
        verdict = "PASS" if total <= WEIGHT_TARGET_KB * 1000 else "MISS"
        lines.append(
            f"{label:10} model page weight: {page / 1000:.1f} kB HTML, {total / 1000:.1f} kB with assets  "
            f"target <= {WEIGHT_TARGET_KB:.0f} kB  {verdict}"
        )
        container.close()
        print("\n".join(lines), flush=True)
        return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", type=int)
    parser.add_argument("--versions", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--postgres", help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    models = args.models or (QUICK_MODELS if args.quick else FULL_MODELS)
    versions = args.versions or (QUICK_VERSIONS if args.quick else FULL_VERSIONS)
    runs = args.runs or (QUICK_RUNS if args.quick else FULL_RUNS)
    lines = run(None, models, versions, runs, "sqlite")
    if args.postgres:
        url, drop = postgres_schema(args.postgres)
        try:
            lines += run(url, models, versions, runs, "postgresql")
        finally:
            drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
