"""Backups of a hub: its database, the blobs it holds and its log key, taken as one consistent snapshot.

A backup is a directory (docs/deployment.md, "Backups"):

    backup.json          format, schema revision, the checkpoint of the snapshot, and the sha256 of every file
    tables/<table>.jsonl one JSON object per row, every table of the schema
    blobs/<sha256 hex>   every blob a version or dataset of the snapshot holds
    log.key              the log's signing key (mode 0600): whoever holds the backup can sign as the hub

The database is read in one snapshot (SQLite: the online backup API copies the file first; PostgreSQL: one
REPEATABLE READ read-only transaction), so the tables and the checkpoint agree; blobs are immutable and
content-addressed, so copying the ones the snapshot names afterwards is consistent too. The rows are written as
plain JSON, so a backup of a SQLite hub restores into PostgreSQL and back. Written by hand because no library
dumps an SQLAlchemy schema portably between engines; the rows go through SQLAlchemy Core either way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, LargeBinary, Table, delete, func, insert, select, text
from sqlalchemy.types import DateTime

from aiprov.adapters.db.engine import SCHEMA_HEAD, current_revision, make_engine, migrate
from aiprov.adapters.db.schema import Base, DatasetRow, LogCheckpointRow, VersionFileRow
from aiprov.adapters.files import LocalFile, hash_file
from aiprov.core.digest import Digest
from aiprov.errors import Conflict, IntegrityError, InvalidInput, SchemaError
from aiprov.ports import BlobStore

FORMAT = "aiprov-backup/1"
MANIFEST = "backup.json"
KEY_FILE = "log.key"
BATCH = 1000

Progress = Callable[[str], None]


@dataclass
class BackupReport:
    """What a backup holds (`aiprov backup --json`) or what a restore put back (`aiprov restore --json`)."""

    path: Path
    schema: str
    checkpoint: str
    """The signed checkpoint note of the snapshot: the newest the log had signed when it was taken."""
    tree_size: int
    root_hash: bytes
    tables: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    blob_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "schema": self.schema,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "checkpoint": self.checkpoint,
            "tables": self.tables,
            "blobs": self.blobs,
            "blob_bytes": self.blob_bytes,
        }


def _tables() -> list[Table]:
    return list(Base.metadata.sorted_tables)  # parents before children: inserts in this order satisfy every FK


def _encode(table: Table, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.columns:
        value = getattr(row, column.name)
        if isinstance(value, bytes | memoryview):
            value = base64.b64encode(bytes(value)).decode()
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[column.name] = value
    return out


def _decode(table: Table, data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.name not in data:
            raise InvalidInput(f"the backup's {table.name} rows have no column {column.name}")
        value = data[column.name]
        if value is not None and isinstance(column.type, LargeBinary):
            value = base64.b64decode(value)
        elif value is not None and isinstance(column.type, DateTime):
            value = datetime.fromisoformat(value)
        out[column.name] = value
    return out


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection that sees one consistent state of the database for as long as it is open."""
    if engine.dialect.name == "sqlite":
        source = engine.url.database
        assert source, "a file database"
        with tempfile.TemporaryDirectory(prefix="aiprov-backup-") as tmp:
            copy = Path(tmp) / "snapshot.db"
            src, dst = sqlite3.connect(source), sqlite3.connect(copy)
            try:
                src.backup(dst)  # SQLite's online backup: a consistent copy while writers go on
            finally:
                src.close()
                dst.close()
            snapshot = make_engine(f"sqlite:///{copy}")
            try:
                with snapshot.connect() as conn:
                    yield conn
            finally:
                snapshot.dispose()
        return
    options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        yield conn


def _sha256_file(path: Path) -> str:
    return hash_file(LocalFile(path.name, path, path.stat().st_size)).sha256.hex


def backup(
    engine: Engine, blobs: BlobStore, key_file: Path, dest: Path, progress: Progress | None = None
) -> BackupReport:
    """Write a backup of the hub to the new directory `dest` (made atomically: nothing is there until it is whole).

    Raises InvalidInput (dest exists), SchemaError (the database is not at this aiprov's schema), IntegrityError
    (a blob does not match its digest: the backup is not written).
    """
    say = progress or (lambda _: None)
    if dest.exists():
        raise InvalidInput(f"{dest} already exists: a backup goes into a new directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (work / "tables").mkdir()
        (work / "blobs").mkdir()
        files: dict[str, str] = {}
        with _snapshot(engine) as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
            if revision != SCHEMA_HEAD:
                raise SchemaError(f"the database is at schema {revision}, not {SCHEMA_HEAD}", hint="run `aiprov init`")
            newest = conn.execute(select(LogCheckpointRow).order_by(LogCheckpointRow.size.desc()).limit(1)).first()
            if newest is None:
                raise InvalidInput("the log has no checkpoint yet: there is nothing to back up")
            report = BackupReport(dest, revision, newest.note, newest.size, bytes(newest.root_hash))
            for table in _tables():
                say(f"table {table.name}")
                path = work / "tables" / f"{table.name}.jsonl"
                n = 0
                with path.open("w", encoding="utf-8") as out:
                    for row in conn.execute(select(table).execution_options(yield_per=BATCH)):
                        out.write(json.dumps(_encode(table, row), separators=(",", ":"), allow_nan=False) + "\n")
                        n += 1
                report.tables[table.name] = n
                files[f"tables/{table.name}.jsonl"] = _sha256_file(path)
            held = {r[0] for r in conn.execute(select(VersionFileRow.sha256).distinct())}
            held |= {str(r[0]).removeprefix("sha256:") for r in conn.execute(select(DatasetRow.digest))}
        for hex_digest in sorted(held):
            say(f"blob {hex_digest[:12]}")
            digest = Digest.parse("sha256:" + hex_digest)
            h = hashlib.sha256()
            target = work / "blobs" / hex_digest
            with target.open("wb") as out:
                for chunk in blobs.read(digest):
                    h.update(chunk)
                    out.write(chunk)
                report.blob_bytes += out.tell()
            if h.hexdigest() != hex_digest:
                raise IntegrityError(f"the stored blob sha256:{hex_digest} does not match its digest")
            report.blobs += 1
        key = work / KEY_FILE
        shutil.copyfile(key_file, key)
        os.chmod(key, 0o600)
        files[KEY_FILE] = _sha256_file(key)
        manifest = {"format": FORMAT, **report.to_json(), "files": files}
        del manifest["path"]
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def read_manifest(src: Path) -> dict[str, Any]:
    """The backup's manifest, its files checked against their sha256. Raises InvalidInput, IntegrityError."""
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{src} is not an aiprov backup (no readable {MANIFEST}: {e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{src} is not an aiprov backup of format {FORMAT}")
    for name, digest in manifest["files"].items():
        path = src / name
        if not path.is_file() or _sha256_file(path) != digest:
            raise IntegrityError(f"the backup's {name} is missing or does not match its sha256 in {MANIFEST}")
    return manifest


def restore(
    src: Path, engine: Engine, blobs: BlobStore, key_file: Path, progress: Progress | None = None
) -> BackupReport:
    """Restore the backup in `src` into an empty database, `blobs` and a new `key_file`.

    Raises InvalidInput (not a backup), IntegrityError (a file or blob does not match), SchemaError (another
    schema), Conflict (the database or key file is not empty). Nothing is kept in the database on a failure.
    """
    say = progress or (lambda _: None)
    manifest = read_manifest(src)
    if manifest["schema"] != SCHEMA_HEAD:
        raise SchemaError(
            f"the backup is of schema {manifest['schema']}, this aiprov's is {SCHEMA_HEAD}",
            hint="restore with the aiprov release that took it, then upgrade with `aiprov init`",
        )
    if current_revision(engine) is not None:
        raise Conflict("the target database already holds a hub: restore needs an empty one")
    key = (src / KEY_FILE).read_bytes()
    if key_file.exists() and key_file.read_bytes() != key:
        raise Conflict(f"a different log key is already at {key_file}: restore needs the hub's own key")
    report = BackupReport(
        src, manifest["schema"], manifest["checkpoint"], int(manifest["tree_size"]),
        bytes.fromhex(manifest["root_hash"]),
    )  # fmt: skip
    # Blobs first: a database whose versions point at missing bytes would be worse than no database.
    for path in sorted((src / "blobs").iterdir()):
        say(f"blob {path.name[:12]}")
        writer = blobs.writer()
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    writer.write(chunk)
            writer.commit(Digest.parse("sha256:" + path.name))
        except BaseException:
            writer.abort()
            raise
        report.blobs += 1
        report.blob_bytes += path.stat().st_size
    migrate(engine)
    try:
        with engine.begin() as conn:
            for table in reversed(_tables()):  # whatever the migrations seeded goes: the backup's rows replace it
                conn.execute(delete(table))
            for table in _tables():
                say(f"table {table.name}")
                report.tables[table.name] = _load(conn, table, src / "tables" / f"{table.name}.jsonl")
            _end_unfinished_jobs(conn)
            if engine.dialect.name == "postgresql":
                _reset_sequences(conn)
    except BaseException:
        _drop_all(engine)
        raise
    with engine.begin() as conn:
        # A bulk load leaves the planner no statistics until autovacuum runs: measured at 100,000 models, the
        # trigram search then costs 52 ms instead of 24 ms (benchmarks/bench_web.py). SQLite's ANALYZE is cheap too.
        conn.execute(text("ANALYZE"))
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".log.key.", dir=key_file.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    os.chmod(tmp, 0o600)
    os.replace(tmp, key_file)
    return report


def _load(conn: Connection, table: Table, path: Path) -> int:
    n = 0
    batch: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            batch.append(_decode(table, json.loads(line)))
            if len(batch) == BATCH:
                conn.execute(insert(table), batch)
                n, batch = n + len(batch), []
    if batch:
        conn.execute(insert(table), batch)
        n += len(batch)
    return n


def _end_unfinished_jobs(conn: Connection) -> None:
    """Fail the jobs the backup caught queued or running: the queue's own tables (procrastinate's) are not in it.

    The problem body says what happened, so whoever waits on such a job asks again instead of waiting forever.
    """
    from sqlalchemy import update

    from aiprov.adapters.db.schema import JobRow

    problem = {
        "type": "https://aiprov.dev/problems/conflict", "title": "conflict", "status": 409, "code": "conflict",
        "detail": "the hub was restored from a backup taken while this job was unfinished: ask for it again",
    }  # fmt: skip
    conn.execute(update(JobRow).where(JobRow.state.in_(("queued", "running"))).values(state="failed", error=problem))


def _reset_sequences(conn: Connection) -> None:
    """Move each serial id past the restored rows (PostgreSQL keeps its sequences apart from the rows)."""
    for table in _tables():
        for column in table.primary_key.columns:
            if column.autoincrement is True or (column.autoincrement == "auto" and len(table.primary_key.columns) == 1):
                sequence = conn.execute(
                    text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
                ).scalar()
                if sequence:
                    top = conn.execute(select(func.max(column))).scalar()
                    conn.execute(text("SELECT setval(:s, :v, :called)"), {"s": sequence, "v": top or 1,
                                                                          "called": top is not None})  # fmt: skip


def _drop_all(engine: Engine) -> None:
    """Leave the target database empty again after a failed restore (so it can be retried)."""
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
