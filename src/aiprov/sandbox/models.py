"""Registered versions made ready for workers: bytes re-verified, scanned, then handed over as local paths.

This is the only way a registered model reaches a worker. Files are written from the blob store, whose reader
re-hashes every byte, into the worker pool's model root (a private temporary directory by default, the only one
its sandboxed workers may read); the scanner then reads exactly the bytes a worker will load, and a version with
any unsafe file is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiprov.core.manifest import Manifest, ManifestEntry, check_relative_path
from aiprov.errors import IntegrityError, InvalidInput, UnsafeModelError
from aiprov.extras import require_installed
from aiprov.ports import BlobStore
from aiprov.records import VersionRecord
from aiprov.sandbox.pool import WorkerPool
from aiprov.sandbox.spec import ModelSpec, Prediction

LOADABLE_FORMATS = ("skops", "onnx", "joblib", "pickle")
"""Formats a worker can load."""

LOADER_MODULES = {
    "skops": ("skops", "sklearn"),
    "onnx": ("onnxruntime", "numpy"),
    "joblib": ("joblib", "sklearn"),
    "pickle": ("joblib", "sklearn"),
}
"""What a worker imports to load each format (all in the ml extra)."""

JOBLIB_COMPRESSIONS = ("zlib", "gzip", "bz2", "lzma", "xz")
"""Compressions the scanner reports as `joblib+zlib` etc. and `joblib.load` reads transparently."""


def loadable_format(scanned: str) -> str | None:
    """The loader format for a scanner format (`joblib+gzip` -> `joblib`), or None if the hub cannot load it."""
    base, _, compression = scanned.partition("+")
    if compression and (base not in ("joblib", "pickle") or compression not in JOBLIB_COMPRESSIONS):
        return None
    return base if base in LOADABLE_FORMATS else None


def materialize(manifest: Manifest, blobs: BlobStore, dest: Path) -> None:
    """Write the files of `manifest` under `dest`, each re-verified against its digest and size as it is read.

    Raises IntegrityError (naming the file) if stored bytes do not match the manifest, NotFound if a blob is
    missing, BackendError if the store cannot be read.
    """
    for entry in manifest.entries:
        _write_verified(entry, blobs, dest)


def _write_verified(entry: ManifestEntry, blobs: BlobStore, dest: Path) -> None:
    target = dest / check_relative_path(entry.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial"
    size = 0
    try:
        with open(partial, "xb") as f:
            try:
                for chunk in blobs.read(entry.sha256):
                    size += len(chunk)
                    f.write(chunk)
            except IntegrityError as e:
                raise IntegrityError(f"{entry.path}: {e.message}") from e
        if size != entry.size:
            raise IntegrityError(f"{entry.path}: stored blob has {size} bytes, the manifest says {entry.size}")
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def model_spec(key: str, root: Path, paths: Sequence[str]) -> ModelSpec:
    """Scan the files `paths` under `root` and pick the one a worker loads.

    Raises UnsafeModelError (with the findings) if any file is unsafe, InvalidInput if no file or more than one
    is in a loadable format.
    """
    from aiprov.scanning import scan_file

    reports = {p: scan_file(root / p, label=p) for p in paths}
    unsafe = {p: r for p, r in reports.items() if r.verdict == "unsafe"}
    if unsafe:
        findings = [
            {"path": p, "reason": f.reason, "detail": f.detail} for p, r in sorted(unsafe.items()) for f in r.findings
        ]
        raise UnsafeModelError(
            f"refusing to load: the scanner found {', '.join(sorted(unsafe))} unsafe", findings=findings
        )
    loadable = sorted(p for p, r in reports.items() if r.verdict == "safe" and loadable_format(r.format))
    if not loadable:
        raise InvalidInput(
            "no file of this model is in a format the hub loads",
            hint=f"loadable formats: {', '.join(LOADABLE_FORMATS)}",
        )
    if len(loadable) > 1:
        raise InvalidInput(f"the model has several loadable files ({', '.join(loadable)}); push one model per version")
    entry = loadable[0]
    fmt = loadable_format(reports[entry].format)
    assert fmt is not None
    # The worker runs this interpreter: a loader library missing here is missing there, said here in one line.
    require_installed(f"loading a {fmt} model", *LOADER_MODULES[fmt])
    trusted = _skops_types(root / entry) if fmt == "skops" else ()
    return ModelSpec(key=key, root=str(root), entry=entry, format=fmt, trusted=trusted)


def _skops_types(path: Path) -> tuple[str, ...]:
    """The types a skops file constructs, each checked against the scanner's allow-list.

    skops reads them from the archive's JSON schema; nothing is executed. Raises UnsafeModelError naming the
    types that are not allowed (the scanner should already have refused such a file).
    """
    from skops.io import get_untrusted_types

    from aiprov.scanning.allowlist import classify

    types = tuple(sorted(get_untrusted_types(file=path)))
    refused = [t for t in types if classify(*t.rpartition(".")[::2]) is None]
    if refused:
        raise UnsafeModelError(
            f"refusing to load {path.name}: it constructs types outside the allow-list",
            findings=[{"path": path.name, "reason": "type not allowed", "detail": t} for t in refused],
        )
    return types


class SandboxedModels:
    """Registered versions run in a `WorkerPool`, each prepared once (verified, scanned) and cached by digest."""

    def __init__(self, blobs: BlobStore, pool: WorkerPool) -> None:
        self.blobs = blobs
        self.pool = pool
        self._specs: dict[str, ModelSpec] = {}
        self._lock = threading.Lock()

    def spec(self, version: VersionRecord) -> ModelSpec:
        """The spec of `version`, materialising and scanning it the first time.

        Raises as `materialize` and `model_spec`.
        """
        key = str(version.manifest.digest)
        with self._lock:
            if key in self._specs:
                return self._specs[key]
            # Under the pool's model root, the one directory its sandboxed workers may read models from.
            root = self.pool.model_root / version.manifest.digest.hex
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            try:
                materialize(version.manifest, self.blobs, root)
                spec = model_spec(key, root, [e.path for e in version.manifest.entries])
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            self._specs[key] = spec
            return spec

    def predict(self, version: VersionRecord, rows: Any, *, proba: bool = False) -> Prediction:
        """Run `version` on `rows` in a worker. Raises as `spec` and `WorkerPool.predict`."""
        return self.pool.predict(self.spec(version), rows, proba=proba)

    def close(self) -> None:
        """Stop the workers and delete the materialised files."""
        self.pool.close()
        with self._lock:
            for spec in self._specs.values():
                shutil.rmtree(spec.root, ignore_errors=True)
            self._specs.clear()
