"""Never execute an upload: format detection by content and allow-list analysis of pickles.

    report = scan_path(Path("model/"))        # a file or every file of a directory
    if report.verdict != "safe": ...          # "unsafe" (refuse, keep as evidence) or "unsupported" (cannot check)

Nothing here imports, unpickles or loads anything from the scanned bytes. The format comes from the content,
never from the file name. Pickle-bearing formats (pickle, joblib, PyTorch zip, numpy object arrays) are walked
opcode by opcode and are safe only when every global they name is on our allow-list (`allowlist.py`); any parse
error, truncation or trailing data is unsafe. Formats without code (safetensors, ONNX, numeric numpy, skops with
trusted types, JSON/text) are validated structurally. What cannot be checked (HDF5, unknown binaries) is
"unsupported", which is never "safe". Each file's scan is bounded (`ScanLimits`): past its decompressed bytes or
its time the file is unsafe, with a finding that names the limit.
"""

from __future__ import annotations

import mmap
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from aiprov.scanning.limits import ScanLimits
from aiprov.scanning.report import FileReport, Finding, ScanReport, Verdict

if TYPE_CHECKING:
    from aiprov.scanning.formats import Input

__all__ = [
    "FileReport",
    "Finding",
    "ScanLimits",
    "ScanReport",
    "Verdict",
    "reads_through",
    "scan_file",
    "scan_path",
    "scan_stream",
]

DEFAULT_LIMITS = ScanLimits()


def _report(label: str, inp: Input) -> FileReport:
    from aiprov.scanning.formats import scan_input
    from aiprov.scanning.limits import LimitExceeded

    try:
        outcome = scan_input(inp)
    except LimitExceeded as e:
        return FileReport(label, "over-limit", "unsafe", (e.finding,))
    return FileReport(label, outcome.format, outcome.verdict, tuple(outcome.unsafe + outcome.unsupported))


def scan_stream(
    path: str, stream: BinaryIO, size: int | None = None, limits: ScanLimits = DEFAULT_LIMITS
) -> FileReport:
    """Scan the bytes of `stream` from its current position to its end; `path` is only the report's label.

    A stream that cannot seek is first copied to a temporary spool (in memory up to 64 MiB). `size`, when
    given, must be the number of bytes left in the stream. Raises OSError if the stream cannot be read, and
    ValueError if `size` is wrong.
    """
    from aiprov.scanning.formats import Input

    if not stream.seekable() or stream.tell():
        # Zip offsets count from the start of the file, so a stream that starts mid-way is copied too.
        with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as spool:
            shutil.copyfileobj(stream, spool, 1 << 20)
            spool.seek(0)
            return scan_stream(path, spool, size, limits)  # type: ignore[arg-type]
    end = stream.seek(0, 2)
    if size is not None and size != end:
        raise ValueError(f"size {size} does not match the {end} bytes in the stream")

    def reopen() -> BinaryIO:
        stream.seek(0)
        return stream

    return _report(path, Input(path, end, reopen, limits.budget(end), seekable=stream))


def scan_file(path: Path, label: str | None = None, limits: ScanLimits = DEFAULT_LIMITS) -> FileReport:
    """Scan one regular file (memory-mapped: array data that is never interpreted is never read).

    The label defaults to the file name. Raises InvalidInput if the file cannot be opened or read.
    """
    from aiprov.errors import InvalidInput
    from aiprov.scanning.formats import Input

    name = label if label is not None else path.name
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)

            def reopen() -> BinaryIO:
                f.seek(0)
                return f

            if size == 0:
                return _report(name, Input(name, 0, reopen, limits.budget(0), seekable=f))
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _report(name, Input(name, size, reopen, limits.budget(size), data=data, seekable=f))
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror or e}") from e


def reads_through(head: bytes, size: int) -> bool:
    """Whether scanning a file of `size` bytes that starts with `head` (64 bytes) reads most of it.

    A hint for whoever stores the bytes just before they are scanned (push keeps those in the page cache).
    """
    from aiprov.scanning.formats import reads_through

    return reads_through(head, size)


def scan_path(root: Path, limits: ScanLimits = DEFAULT_LIMITS) -> ScanReport:
    """Scan a model: one file, or every file of a directory (as `push` would store them), sorted by path.

    Raises InvalidInput for what `aiprov.adapters.files.model_files` refuses (missing path, symlinks, special
    files, empty directories) and for unreadable files.
    """
    from aiprov.adapters.files import model_files

    return ScanReport.of(tuple(scan_file(f.location, f.path, limits) for f in model_files(root)))
