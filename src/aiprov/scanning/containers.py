"""Containers: zip archives (PyTorch, skops, .npz, Keras v3, any zip) and compressed joblib files.

Every member of an archive is scanned by its content, whatever its name; names only ever add refusals (Python
code in an archive) or exclude a PyTorch storage member that the archive's own pickle references (raw tensor
bytes, which torch never unpickles). An archive laid out oddly — bytes before, between or after its entries, a
comment, duplicate or escaping names, encryption, a bad CRC — is unsafe: loaders disagree on such files.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import posixpath
import shutil
import struct
import tempfile
import zipfile
import zlib
from typing import Any, BinaryIO

from aiprov.scanning import allowlist
from aiprov.scanning.allowlist import Kind
from aiprov.scanning.formats import Input, Outcome, scan_input, scan_pickle, scan_text
from aiprov.scanning.limits import Budget
from aiprov.scanning.pickle import walk_pickle
from aiprov.scanning.report import Finding
from aiprov.scanning.source import Source

SPOOL = 64 * 1024 * 1024  # members up to this size are extracted in memory, larger ones to a temporary file
_READ_ERRORS = (OSError, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error, lzma.LZMAError)


# compressed joblib -----------------------------------------------------------------------------------


def compression_of(head: bytes) -> str | None:
    """The compression joblib would detect from these first bytes (gzip, bz2, xz/lzma, zlib, lz4), or None."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        try:
            zlib.decompressobj().decompress(head[:2])  # the header only: a corrupt stream is still zlib
        except zlib.error:
            return None  # text that happens to start like a zlib header
        return "zlib"
    return None


class _Zlib:
    """A read-only stream over a raw zlib stream (joblib's `compress=('zlib', n)`); nothing may follow it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._d = zlib.decompressobj()
        self._out = b""
        # zlib drops a call's output when it fails: feeding small pieces first tells a stream that is corrupt
        # from its first bytes (never unpickled) from one that fails after yielding a pickle's opcodes.
        self._piece = 1

    def read(self, n: int = -1) -> bytes:
        while len(self._out) < n and not self._d.eof:
            chunk = self._raw.read(self._piece)
            self._piece = min(self._piece * 2, 1 << 20)
            if not chunk:
                raise EOFError("the zlib stream is truncated")
            self._out += self._d.decompress(chunk)
        if self._d.eof and (self._d.unused_data or self._raw.read(1)):
            raise OSError("bytes follow the end of the zlib stream")
        data, self._out = self._out[:n], self._out[n:]
        return data


class _Guarded:
    """Turns a decompressor's own exceptions into OSError, which the parsers report as a corrupt file."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = self._raw.read(n)
        except _READ_ERRORS as e:
            raise OSError(f"decompression failed: {type(e).__name__}: {e}") from e
        return data


class _Inflated:
    """One container's decompressed bytes, charged to the file's budget once however often they are re-read."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.charged = 0

    def reach(self, end: int) -> None:
        """A stream of this container has produced `end` bytes: charge what no stream produced before."""
        if end > self.charged:
            self.budget.spend(end - self.charged)
            self.charged = end
        else:
            self.budget.check_time()


class _Metered:
    """Counts the bytes a decompressing stream yields and charges them (and the clock) on each read."""

    def __init__(self, raw: Any, inflated: _Inflated) -> None:
        self._raw = raw
        self._inflated = inflated
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._raw.read(n)
        self._pos += len(data)
        self._inflated.reach(self._pos)
        return data


def _decompressor(inp: Input, compression: str, inflated: _Inflated) -> BinaryIO:
    raw = inp.open()
    stream: Any
    if compression == "gzip":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif compression == "bz2":
        stream = bz2.BZ2File(raw)
    elif compression in ("xz", "lzma"):
        stream = lzma.LZMAFile(raw)  # noqa: SIM115 - as above
    else:
        stream = _Zlib(raw)
    metered: Any = _Metered(_Guarded(stream), inflated)
    return metered  # type: ignore[no-any-return]


def scan_compressed(inp: Input, compression: str) -> Outcome:
    """A compressed joblib file: the decompressed bytes must be one pickle (walked as joblib reads it).

    joblib unpickles whatever decompresses, so the stream is walked whatever its first byte. Bytes that do not
    decompress at all are never unpickled: text that merely starts like a zlib header is text, the rest is
    unsupported. Every decompressed byte is charged to the file's budget.
    """
    if compression == "lz4":
        return Outcome("lz4", unsupported=[Finding("unsupported", "lz4-compressed content is not checked here")])
    inflated = _Inflated(inp.budget)  # the stream is opened again for each pass over it
    inner = Input(inp.label, -1, lambda: _decompressor(inp, compression, inflated), inp.budget, depth=inp.depth + 1)
    try:
        head = inner.head(1)
    except OSError as e:
        text = scan_text(inp)
        if text.format in ("text", "json"):
            return text
        return Outcome(compression, unsupported=[Finding("unsupported", f"{compression} data that is corrupt: {e}")])
    if not head:
        return Outcome(compression, unsupported=[Finding("unsupported", f"{compression} data that holds nothing")])
    out = scan_pickle(inner)
    if out.format == "pickle?":
        return Outcome(
            compression, unsupported=[Finding("unsupported", f"{compression} data that is not a joblib pickle")]
        )
    out.format = f"{out.format}+{compression}"
    return out


# zip -------------------------------------------------------------------------------------------------


def _u(fmt: str, data: bytes, offset: int = 0) -> tuple[int, ...]:
    return struct.unpack_from(fmt, data, offset)


def zip_layout(f: BinaryIO, size: int, infos: list[zipfile.ZipInfo]) -> list[str]:
    """Problems with how the archive's bytes are laid out.

    Every byte must belong to an entry, the central directory or its end record, in order, with nothing before,
    between or after.
    """
    problems: list[str] = []
    f.seek(max(0, size - 22))
    eocd = f.read(22)
    if len(eocd) < 22 or not eocd.startswith(b"PK\x05\x06"):
        return ["the end-of-central-directory record is not at the end (a comment or trailing data)"]
    cd_size, cd_offset = _u("<II", eocd, 12)
    cd_end_expected = size - 22
    if cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF or _u("<H", eocd, 10)[0] == 0xFFFF:
        f.seek(size - 42)
        locator = f.read(20)
        if not locator.startswith(b"PK\x06\x07"):
            return ["zip64 end-of-central-directory locator missing"]
        z64_offset = _u("<Q", locator, 8)[0]
        f.seek(z64_offset)
        z64 = f.read(56)
        if not z64.startswith(b"PK\x06\x06"):
            return ["zip64 end-of-central-directory record missing"]
        cd_size, cd_offset = _u("<QQ", z64, 40)
        if z64_offset + 12 + _u("<Q", z64, 4)[0] != size - 42:
            problems.append("bytes between the zip64 end record and its locator")
        cd_end_expected = z64_offset
    if cd_offset + cd_size != cd_end_expected:
        problems.append("bytes between the central directory and its end record")
    position = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != position:
            where = "before the first entry" if position == 0 else f"between entries at byte {position}"
            problems.append(f"{abs(info.header_offset - position)} unexplained byte(s) {where}")
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) < 30 or not local.startswith(b"PK\x03\x04"):
            problems.append(f"{info.filename!r}: no local header at byte {info.header_offset}")
            return problems
        name_len, extra_len = _u("<HH", local, 26)
        position = info.header_offset + 30 + name_len + extra_len + info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows: signature optional, 32- or 64-bit sizes
            f.seek(position)
            sig = f.read(4) == b"PK\x07\x08"
            position += (4 if sig else 0) + (20 if info.compress_size >= 0xFFFFFFFF else 12)
    if position != cd_offset:
        problems.append(f"{abs(cd_offset - position)} unexplained byte(s) before the central directory")
    return problems


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> BinaryIO:
    """A member's bytes in a seekable spool (the caller closes it); reading to the end checks the CRC.

    A compressed member's bytes are charged to `budget` as they inflate. Raises zipfile.BadZipFile (bad CRC) or
    one of _READ_ERRORS for a member that cannot be read intact, LimitExceeded past the budget.
    """
    spool: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 - returned to the caller
    try:
        with zf.open(info) as member:
            source: Any = member if info.compress_type == zipfile.ZIP_STORED else _Metered(member, _Inflated(budget))
            shutil.copyfileobj(source, spool, 1 << 20)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool  # type: ignore[no-any-return]


def _member_input(inp: Input, info: zipfile.ZipInfo, spool: BinaryIO) -> Input:
    def reopen() -> BinaryIO:
        spool.seek(0)
        return spool

    return Input(
        f"{inp.label}:{info.filename}", info.file_size, reopen, inp.budget, seekable=spool, depth=inp.depth + 1
    )


def _bad_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or ":" in name or "\x00" in name


def scan_zip(inp: Input) -> Outcome:
    """Scan a zip archive and every member in it; PyTorch, skops, .npz and Keras layouts get their extra checks."""
    out = Outcome("zip")
    f = inp.seekable
    if f is None:  # only decompressed streams lack one, and those must be joblib pickles
        return Outcome("zip", unsupported=[Finding("unsupported", "a zip archive inside a compressed stream")])
    size = f.seek(0, 2)
    try:
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
    except (zipfile.BadZipFile, *_READ_ERRORS) as e:
        out.unsafe.append(Finding("bad-zip", f"not a well-formed zip archive: {e}"))
        return out
    out.unsafe.extend(Finding("bad-zip", p) for p in zip_layout(f, size, infos))
    names = [i.filename for i in infos]
    if len(names) != len(set(names)):
        out.unsafe.append(Finding("bad-zip", "the archive has two members with the same name"))
    for info in infos:
        if info.flag_bits & 0x01:
            out.unsafe.append(Finding("bad-zip", f"{info.filename!r} is encrypted and cannot be checked"))
        if _bad_name(info.filename):
            out.unsafe.append(Finding("path-traversal", f"member name {info.filename!r} escapes the archive"))
        if info.filename.endswith(".py") or "/code/" in f"/{info.filename}":
            out.unsafe.append(Finding("python-code", f"{info.filename!r} is Python source (TorchScript code)"))
    if out.unsafe:
        return out
    _check_declared_sizes(infos, inp.budget)
    files = [i for i in infos if not i.is_dir()]
    storages: set[str] = set()
    kinds: list[str] = []
    # First the archive's pickles by name (torch reads <dir>/data.pkl), to learn which storages they reference.
    for info in files:
        if info.filename.endswith(".pkl"):
            kinds.append(_scan_member(zf, inp, info, out, storages, torch=True))
    for info in files:
        if info.filename.endswith(".pkl"):
            continue
        if info.filename in storages:
            try:
                _extract(zf, info, inp.budget).close()  # raw tensor bytes: read only to check the CRC
            except (zipfile.BadZipFile, *_READ_ERRORS) as e:
                out.unsafe.append(Finding("bad-crc", f"{info.filename!r}: {e}"))
            continue
        kinds.append(_scan_member(zf, inp, info, out, storages, torch=False))
    names_set = set(names)
    if "schema.json" in names_set:
        out.format = "skops"
        _skops_schema(zf, out)
    elif storages or any(n.endswith("data.pkl") for n in names):
        out.format = "pytorch"
        missing = storages - names_set
        if missing:
            out.unsafe.append(Finding("bad-zip", f"storages referenced but missing: {sorted(missing)[:5]}"))
    elif {"config.json", "metadata.json"} <= names_set:
        out.format = "keras"
    elif kinds and all(k.startswith("npy") for k in kinds):
        out.format = "npz"
    return out


def _check_declared_sizes(infos: list[zipfile.ZipInfo], budget: Budget) -> None:
    """Refuse at once an archive whose compressed members declare more bytes than the budget has left.

    The declared sizes bind: zipfile stops a member at its declared size and then checks its CRC, so a member
    cannot inflate past what it declares; `_extract` still charges what actually inflates.
    """
    budget.require(sum(i.file_size for i in infos if i.compress_type != zipfile.ZIP_STORED))
    budget.check_time()


def _scan_member(
    zf: zipfile.ZipFile, inp: Input, info: zipfile.ZipInfo, out: Outcome, storages: set[str], torch: bool
) -> str:
    try:
        spool = _extract(zf, info, inp.budget)
    except (zipfile.BadZipFile, *_READ_ERRORS) as e:
        out.unsafe.append(Finding("bad-crc", f"{info.filename!r} cannot be read intact: {e}"))
        return "corrupt"
    with spool:
        member = _member_input(inp, info, spool)
        head = member.head(2)
        if torch and head[:1] == b"\x80":
            # torch.load unpickles with persistent ids naming storages at <dir>/data/<key>.
            src = Source(stream=member.open())
            result = walk_pickle(src, "torch", inp.budget)
            found = Outcome("pickle", list(result.findings))
            if result.complete and not src.at_end():
                found.unsafe.append(Finding("trailing-data", f"{src.drain()} byte(s) follow the pickle's STOP"))
            folder = posixpath.dirname(info.filename)
            storages.update(posixpath.join(folder, "data", key) for key in result.storage_keys)
        else:
            found = scan_input(member)
    out.merge(found, prefix=f"{info.filename}: ")
    return found.format


_SKOPS_LOADERS = frozenset(
    [
        "ObjectNode",
        "DictNode",
        "ListNode",
        "TupleNode",
        "SetNode",
        "JsonNode",
        "TypeNode",
        "NdArrayNode",
        "TreeNode",
        "SparseMatrixNode",
        "RandomStateNode",
        "RandomGeneratorNode",
        "BunchNode",
        "SGDNode",
        "SliceNode",
        "LossNode",
    ]
)


def _skops_schema(zf: zipfile.ZipFile, out: Outcome) -> None:
    """Report every type a skops file would construct that our allow-list does not trust."""
    try:
        schema = json.loads(zf.read("schema.json"))
    except (ValueError, *_READ_ERRORS) as e:
        out.unsafe.append(Finding("bad-header", f"schema.json is not valid JSON: {e}"))
        return
    untrusted: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(node.values())
        module, cls, loader = node.get("__module__"), node.get("__class__"), node.get("__loader__")
        if isinstance(module, str) and isinstance(cls, str):
            module, cls = allowlist.normalize(module, cls)
            if allowlist.classify(module, cls) is not Kind.CLASS:
                untrusted.add(f"{module}.{cls}")
        if loader is not None and loader not in _SKOPS_LOADERS:
            untrusted.add(f"skops loader {loader}")
        if isinstance(node.get("module_path"), str) and isinstance(node.get("function"), str):
            untrusted.add(f"{node['module_path']}.{node['function']}")
    out.unsafe.extend(
        Finding("untrusted-type", f"skops file constructs {name}, which is not on the allow-list")
        for name in sorted(untrusted)
    )
