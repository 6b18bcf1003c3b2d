"""Datasets to evaluate on: the benchmarks scikit-learn ships, and user CSV/Parquet files registered by digest.

A benchmark is split with `BENCHMARK_SPLIT` (seeded, stratified for classification) and evaluated on the test
part; a user dataset is a test set and is evaluated whole. Every feature column must be numeric; the target
may be anything a model predicts (labels or numbers).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiprov.core.digest import Digest
from aiprov.core.names import ModelName
from aiprov.errors import Conflict, InvalidInput, NotFound, UnsafeModelError
from aiprov.extras import missing
from aiprov.ports import BlobStore, RegistryStore
from aiprov.records import DatasetRecord
from aiprov.scanning import ScanLimits, scan_stream

TASKS = ("classification", "regression")

BENCHMARKS: dict[str, tuple[str, str]] = {
    "iris": ("load_iris", "classification"),
    "digits": ("load_digits", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
"""Benchmark name -> (sklearn.datasets loader, task). All ship with scikit-learn: nothing is downloaded."""

BENCHMARK_SPLIT: dict[str, Any] = {
    "method": "sklearn.model_selection.train_test_split",
    "test_size": 0.25,
    "random_state": 0,
    "shuffle": True,
}
"""How a benchmark is split; classification benchmarks are also stratified on the target (`stratify: true`)."""

PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True, slots=True)
class TestSet:
    """Rows to evaluate on: features `x` (float64, rows x features) and targets `y`, with where they came from."""

    name: str
    digest: str
    task: str
    split: dict[str, Any]
    x: Any
    y: Any


def benchmark_name(text: str) -> str:
    """The benchmark `text` names (`iris` or `sklearn:iris`). Raises InvalidInput for an unknown one."""
    name = text.strip().lower().removeprefix("sklearn:")
    if name not in BENCHMARKS:
        raise InvalidInput(f"unknown benchmark {text!r}", hint=f"one of {', '.join(BENCHMARKS)}")
    return name


def array_digest(x: Any, y: Any) -> str:
    """SHA-256 naming a benchmark's content: shapes, then X and y as little-endian float64, C order.

    Recorded with every benchmark evaluation so a re-run can tell that scikit-learn now ships other rows.
    """
    import numpy as np

    h = hashlib.sha256(b"aiprov-benchmark-v1\n%d %d\n" % x.shape)
    h.update(np.ascontiguousarray(x, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(y, dtype="<f8").tobytes())
    return f"sha256:{h.hexdigest()}"


def benchmark(text: str) -> TestSet:
    """The test part of a benchmark, split by BENCHMARK_SPLIT. Raises InvalidInput, MissingExtra (no sklearn)."""
    return split_benchmark(text)[1]


def split_benchmark(text: str) -> tuple[TestSet, TestSet]:
    """(train, test) parts of a benchmark, split by BENCHMARK_SPLIT: train on the first to evaluate on the second.

    Raises InvalidInput for an unknown name, MissingExtra without scikit-learn.
    """
    name = benchmark_name(text)
    loader, task = BENCHMARKS[name]
    try:
        import sklearn.datasets
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise missing("a benchmark", e, "sklearn") from e
    x, y = getattr(sklearn.datasets, loader)(return_X_y=True)
    stratify = task == "classification"
    x_train, x_test, y_train, y_test = train_test_split(
        x,
        y,
        test_size=BENCHMARK_SPLIT["test_size"],
        random_state=BENCHMARK_SPLIT["random_state"],
        shuffle=BENCHMARK_SPLIT["shuffle"],
        stratify=y if stratify else None,
    )
    split = {**BENCHMARK_SPLIT, "stratify": stratify, "rows": len(y), "test_rows": len(y_test)}
    digest = array_digest(x, y)
    train = TestSet(f"sklearn:{name}", digest, task, {**split, "part": "train"}, x_train, y_train)
    return train, TestSet(f"sklearn:{name}", digest, task, split, x_test, y_test)


def _read_table(data: bytes, source: str) -> tuple[str, Any]:
    """(format, pyarrow Table) of CSV or Parquet bytes, told apart by content. Raises InvalidInput."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError as e:
        raise missing("a dataset", e, "pyarrow") from e
    try:
        if data[:4] == PARQUET_MAGIC and data[-4:] == PARQUET_MAGIC:
            fmt, table = "parquet", pq.read_table(pa.BufferReader(data))
        else:
            fmt, table = "csv", pa_csv.read_csv(pa.BufferReader(data))
    except (pa.ArrowException, ValueError) as e:
        raise InvalidInput(f"{source} is neither a readable CSV nor Parquet file: {e}") from e
    try:  # pyarrow checks a CSV's values are UTF-8 but decodes its header only when asked (a pickle has none)
        table.column_names  # noqa: B018
    except UnicodeDecodeError as e:
        raise InvalidInput(
            f"{source} is neither a readable CSV nor Parquet file: its first line is not UTF-8 text (byte {e.start})",
            hint="a dataset is a CSV with a header row, or a Parquet file",
        ) from e
    return fmt, table


def _columns(table: Any, target: str, source: str) -> tuple[Any, Any, tuple[str, ...], bool]:
    """(X float64, y, feature names, target is numeric-and-fractional) of a table. Raises InvalidInput."""
    import numpy as np
    import pyarrow as pa

    if target not in table.column_names:
        raise InvalidInput(f"{source} has no column {target!r}", hint=f"columns: {', '.join(table.column_names)}")
    features = tuple(c for c in table.column_names if c != target)
    if not features:
        raise InvalidInput(f"{source} has no feature columns besides the target {target!r}")
    if table.num_rows == 0:
        raise InvalidInput(f"{source} has no rows")
    for name in features:
        kind = table.schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            raise InvalidInput(f"feature column {name!r} of {source} is {kind}, not numeric")
    x = np.column_stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in features])
    column = table.column(target)
    if column.null_count:
        raise InvalidInput(f"target column {target!r} of {source} has {column.null_count} empty value(s)")
    y = column.to_numpy(zero_copy_only=False)
    return x, y, features, pa.types.is_floating(column.type)


class DatasetService:
    def __init__(
        self,
        db: RegistryStore,
        blobs: BlobStore,
        *,
        clock: Callable[[], datetime],
        actor: str,
        scan_limits: ScanLimits | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self.actor = actor
        self.scan_limits = scan_limits or ScanLimits()

    def _scan(self, data: bytes, source: str) -> None:
        """Refuse a dataset file the scanner judges unsafe (a pickle posing as CSV): every upload is scanned.

        Raises UnsafeModelError (nothing is stored or registered).
        """
        report = scan_stream(source, io.BytesIO(data), limits=self.scan_limits)
        if report.verdict == "unsafe":
            findings = [{"path": source, **f.to_json()} for f in report.findings]
            raise UnsafeModelError(f"{source}: refused, {findings[0]['detail']}", findings)

    def add(
        self, path: Path, name: str, target: str, task: str | None = None, *, actor: str | None = None
    ) -> tuple[DatasetRecord, bool]:
        """Register the CSV or Parquet file at `path` as dataset `name` (OWNER/NAME); return it and whether it is new.

        The format is read from the content. `task` defaults to regression for a floating-point target and
        classification otherwise. The same bytes under the same name return the existing record.
        Raises InvalidInput (unreadable file, missing target, non-numeric feature), UnsafeModelError (the scanner
        refuses the bytes), Conflict (the name holds other bytes: datasets are immutable), BackendError.
        """
        parsed = ModelName.parse(name)
        _check_task(task)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read {path}: {e.strerror}") from e
        self._scan(data, path.name)
        fmt, table = _read_table(data, str(path))
        _, _, features, fractional = _columns(table, target, str(path))
        digest = Digest.of(data)
        writer = self.blobs.writer()
        try:
            writer.write(data)
            writer.commit(expected=digest)
        except BaseException:
            writer.abort()
            raise
        return self._register(parsed, digest, len(data), fmt, table.num_rows, target, task, features, fractional, actor)

    def add_blob(
        self, digest: Digest, name: str, target: str, task: str | None = None, *, actor: str | None = None
    ) -> tuple[DatasetRecord, bool]:
        """Register an uploaded blob as dataset `name`, like `add` (the API's route: the bytes came by upload).

        The blob is read back verified; CSV and Parquet are parsed as data (pyarrow), nothing is executed.
        Raises NotFound (no such blob), IntegrityError, InvalidInput, UnsafeModelError, Conflict, BackendError.
        """
        parsed = ModelName.parse(name)
        _check_task(task)
        if not self.blobs.exists(digest):
            raise NotFound(f"no uploaded blob {digest}", hint="upload it first: PUT /api/v1/blobs/<digest>")
        data = self._read(digest)
        self._scan(data, str(digest))
        fmt, table = _read_table(data, str(digest))
        _, _, features, fractional = _columns(table, target, str(digest))
        return self._register(parsed, digest, len(data), fmt, table.num_rows, target, task, features, fractional, actor)

    def _register(
        self,
        parsed: ModelName,
        digest: Digest,
        size: int,
        fmt: str,
        rows: int,
        target: str,
        task: str | None,
        features: tuple[str, ...],
        fractional: bool,
        actor: str | None,
    ) -> tuple[DatasetRecord, bool]:
        actor = self.actor if actor is None else actor
        now = self.clock()
        with self.db.unit(write=True) as u:
            existing = u.dataset(str(parsed))
            if existing is not None:
                if existing.digest != str(digest):
                    raise Conflict(
                        f"dataset {parsed} is already registered with other bytes ({existing.digest})",
                        hint="datasets are immutable: register the new file under another name",
                    )
                return existing, False
            record = DatasetRecord(
                owner=parsed.owner,
                name=parsed.name,
                digest=str(digest),
                format=fmt,
                target=target,
                task=task or ("regression" if fractional else "classification"),
                rows=rows,
                features=features,
                size=size,
                author=actor,
                created_at=now,
            )
            index = u.add_event(
                actor=actor,
                action="dataset",
                subject=record.digest,
                model=None,
                details={k: v for k, v in record.to_json().items() if k not in ("digest", "author", "created_at")},
                now=now,
            )
            u.add_dataset(record, index)
        return record, True

    def get(self, name: str) -> DatasetRecord:
        """The dataset named OWNER/NAME. Raises NotFound, InvalidInput."""
        parsed = ModelName.parse(name)
        with self.db.unit() as u:
            record = u.dataset(str(parsed))
        if record is None:
            raise NotFound(f"no dataset named {parsed}", hint="`aiprov dataset ls` lists them")
        return record

    def list(self) -> list[DatasetRecord]:
        with self.db.unit() as u:
            return u.datasets()

    def test_set(self, name: str) -> TestSet:
        """All rows of dataset `name`, read from the blob store and verified against its digest.

        Raises NotFound, IntegrityError (the stored bytes were altered), InvalidInput.
        """
        record = self.get(name)
        return dataset_test_set(record, self._read(Digest.parse(record.digest)))

    def _read(self, digest: Digest) -> bytes:
        """A dataset's bytes, verified against `digest` (datasets are parsed whole, so they are read whole)."""
        data = io.BytesIO()
        for chunk in self.blobs.read(digest):
            data.write(chunk)
        return data.getvalue()


def dataset_test_set(record: DatasetRecord, data: bytes) -> TestSet:
    """All rows of the dataset `record` from its bytes `data` (already checked against its digest), parsed as data.

    Raises InvalidInput when they do not parse as the record says.
    """
    _, table = _read_table(data, record.full_name)
    x, y, _, _ = _columns(table, record.target, record.full_name)
    return TestSet(record.full_name, record.digest, record.task, whole_split(record), x, y)


def whole_split(record: DatasetRecord) -> dict[str, Any]:
    """The split of a user dataset: it is evaluated whole."""
    return {"method": "whole", "rows": record.rows, "test_rows": record.rows}


def _check_task(task: str | None) -> None:
    if task is not None and task not in TASKS:
        raise InvalidInput(f"task {task!r} is not one of {', '.join(TASKS)}")
