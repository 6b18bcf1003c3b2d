"""What several benchmarks share: a free port, a throwaway PostgreSQL schema, percentiles, bulk registry rows."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST_TYPE = "https://aiprov.dev/manifest/v1"
CHUNK = 5_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`aiprov serve` on `home` (one process, no access log) on a free port; (the process, its URL) once it answers."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "aiprov", "--home", str(home), "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", "1", "--no-access-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/user", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("aiprov serve did not answer within 60 s")


def postgres_schema(url: str) -> tuple[str, Callable[[], None]]:
    """A fresh schema on the PostgreSQL at `url`: (its URL, a function that drops it)."""
    from sqlalchemy import create_engine, text

    schema = f"aiprov_bench_{secrets.token_hex(4)}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{url}?options=-csearch_path%3D{schema}", drop


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` percentile (0 < q <= 1) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(len(ordered) * q + 0.999999) - 1))]


def bulk_models(
    engine: Any, models: int, versions_per_model: int = 1, say: Callable[[str], None] | None = None
) -> None:
    """`models` models of `versions_per_model` one-file versions each, written as rows in chunks.

    No log events: listing and showing read none, and pushing them one by one would measure the push. Owners are
    o0 … o499, names m-000001 …, every 10th model tagged `demo`, licences mit or apache-2.0. Ends with ANALYZE.
    """
    from sqlalchemy import insert, text

    from aiprov.adapters.db.schema import ModelRow, TagRow, VersionRow

    now = datetime.now(UTC)
    step = max(1, CHUNK // versions_per_model)
    for start in range(0, models, step):
        ids = range(start + 1, min(models, start + step) + 1)
        rows = [
            {
                "id": i, "owner": f"o{i % 500}", "name": f"m-{i:06d}", "full_name": f"o{i % 500}/m-{i:06d}",
                "description": f"model number {i}", "license": "mit" if i % 3 else "apache-2.0", "created_at": now,
            }
            for i in ids
        ]  # fmt: skip
        versions = []
        for i in ids:
            for v in range(1, versions_per_model + 1):
                vid = (i - 1) * versions_per_model + v
                sha = f"{vid:064x}"
                manifest = {"files": [{"path": "model.bin", "sha256": sha, "size": 1000 + v}], "type": MANIFEST_TYPE}
                versions.append(
                    {
                        "id": vid, "model_id": i, "number": v, "digest": f"sha256:{secrets.token_hex(32)}",
                        "manifest": json.dumps(manifest), "total_size": 1000 + v, "file_count": 1,
                        "single_file": True, "author": f"o{i % 500}", "created_at": now, "lineage": {},
                    }
                )  # fmt: skip
        tags = [{"model_id": i, "tag": "demo"} for i in ids if i % 10 == 0]
        with engine.begin() as conn:
            conn.execute(insert(ModelRow), rows)
            conn.execute(insert(VersionRow), versions)
            if tags:
                conn.execute(insert(TagRow), tags)
        if say is not None and (start // step) % 20 == 0:
            say(f"{min(models, start + step) * versions_per_model:,} versions written")
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # ids given explicitly: move the sequences past them
            for table, top in (("models", models), ("versions", models * versions_per_model)):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {top})"))
        # What autovacuum does within a minute of such a load: without statistics PostgreSQL's planner takes the
        # trigram index for dearer than a scan of 100,000 rows (and SQLite's has none to go by either).
        conn.execute(text("ANALYZE"))
