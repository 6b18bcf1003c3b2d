"""`push` reads each file of a model once, and what it scans is exactly what it stores."""

from __future__ import annotations

import builtins
import os
import pickle
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import MakeModel

from aiprov.adapters.files import CHUNK_SIZE
from aiprov.config import Container
from aiprov.errors import InvalidInput, UnsafeModelError
from aiprov.records import ModelFilter
from aiprov.services import registry as registry_module
from aiprov.services.registry import PushRequest

PAYLOAD = b"cos\nsystem\n(S'true'\ntR."
"""A protocol-0 pickle that would run `os.system("true")` if loaded (it never is)."""


def count_opens(monkeypatch: pytest.MonkeyPatch, root: Path) -> Counter[str]:
    """Count every `open()` of a file under `root`, by its path relative to `root`."""
    opened: Counter[str] = Counter()
    real_open = builtins.open

    def counting(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | os.PathLike):
            path = Path(os.fsdecode(file)).absolute()
            if path.is_relative_to(root):
                opened[path.relative_to(root).as_posix()] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting)
    return opened


def blob_files(hub: Container) -> list[Path]:
    """Every file in the blob store, published or temporary (a resumable upload's folder is not a file)."""
    return [p for p in hub.settings.blob_dir.rglob("*") if p.is_file()]


def test_push_opens_each_file_once(hub: Container, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "clf.pkl": pickle.dumps({"weights": list(range(100))}),
        "config.json": b'{"layers": 2}',
        "weights.bin": os.urandom(2 * CHUNK_SIZE + 5),  # large: hashed through the pipeline with the CID builders
    }
    root = make_model(files).absolute()
    opened = count_opens(monkeypatch, root)
    result = hub.registry.push(root, PushRequest("alice/once"))
    assert opened == dict.fromkeys(files, 1)
    assert result.scan.verdict == "unsupported"  # the random weights; the pickle and the JSON are safe
    assert [f.format for f in result.scan.files] == ["pickle", "json", "unknown"]
    assert result.new_blobs == 3


def test_refused_push_opens_each_file_once_and_stores_nothing(
    hub: Container, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_model({"model.pkl": PAYLOAD, "config.json": b"{}"}).absolute()
    opened = count_opens(monkeypatch, root)
    with pytest.raises(UnsafeModelError):
        hub.registry.push(root, PushRequest("mallory/once"))
    assert opened == {"model.pkl": 1, "config.json": 1}
    assert blob_files(hub) == []  # neither a published blob nor a staged one is left
    (evidence,) = [p for p in hub.settings.quarantine_dir.iterdir() if not p.name.startswith(".")]
    assert (evidence / "model.pkl").read_bytes() == PAYLOAD
    assert (evidence / "config.json").read_bytes() == b"{}"


def test_a_source_rewritten_before_it_is_stored_is_scanned_as_stored(
    hub: Container, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan of the source followed by a second read to store it would store bytes nobody scanned."""
    benign = pickle.dumps("a" * (len(PAYLOAD) - 6), protocol=0)  # a plain string, as long as the payload
    assert len(benign) == len(PAYLOAD)
    root = make_model({"model.pkl": benign})
    real_hash_file = registry_module.hash_file

    def swap_then_hash(file: Any, *args: Any, **kwargs: Any) -> Any:
        (root / "model.pkl").write_bytes(PAYLOAD)  # just after any scan of the source, before the store reads it
        return real_hash_file(file, *args, **kwargs)

    monkeypatch.setattr(registry_module, "hash_file", swap_then_hash)
    with pytest.raises(UnsafeModelError):
        hub.registry.push(root, PushRequest("mallory/swap"))
    assert hub.registry.list(ModelFilter()) == []
    assert blob_files(hub) == []


def test_push_failing_half_way_leaves_no_staged_blob(
    hub: Container, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_model({f"part-{i}.bin": os.urandom(1000 + i) for i in range(4)})
    real_scan: Callable[..., Any] = registry_module.scan_file

    def failing_scan(path: Path, label: str, *args: Any) -> Any:
        if label == "part-2.bin":
            raise InvalidInput("cannot read part-2.bin")
        return real_scan(path, label, *args)

    monkeypatch.setattr(registry_module, "scan_file", failing_scan)
    with pytest.raises(InvalidInput):
        hub.registry.push(root, PushRequest("alice/half"))
    assert blob_files(hub) == []
    assert hub.registry.list(ModelFilter()) == []


def test_push_of_stored_bytes_stores_no_new_blob(hub: Container, make_model: MakeModel) -> None:
    files = {"a.bin": os.urandom(3 * CHUNK_SIZE), "b.json": b"{}"}
    first = hub.registry.push(make_model(files), PushRequest("alice/first"))
    stored = {p: p.stat().st_mtime_ns for p in blob_files(hub)}
    again = hub.registry.push(make_model(files), PushRequest("alice/again"))
    assert (first.new_blobs, again.new_blobs, again.new_bytes) == (2, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in blob_files(hub)} == stored  # not rewritten, no staged file left


def test_scanner_says_which_files_it_reads_through() -> None:
    from aiprov.scanning import reads_through

    big = 1 << 30
    safetensors_head = (10).to_bytes(8, "little") + b'{"a": 1}  '
    assert reads_through(b"PK\x03\x04" + bytes(60), big)  # every zip member's CRC is checked
    assert reads_through(b"\x80\x04\x95" + bytes(61), big)  # a pickle is walked to its end
    assert reads_through(bytes(range(64)), 1000)  # small enough to be text: read whole
    assert not reads_through(safetensors_head, big) and not reads_through(b"\x93NUMPY" + bytes(58), big)
    assert not reads_through(b"\xff" * 64, big)  # large unknown binary: its start and end only
