"""Format detection by content (never by file name) and the checks for each single-file format.

`scan_input` looks at the first bytes, picks the format, and runs its check. Containers (zip archives,
compressed joblib files) are in `containers.py`; the pickle walk itself is in `pickle.py`.
"""

from __future__ import annotations

import ast
import codecs
import json
import math
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from aiprov.scanning.limits import Budget
from aiprov.scanning.pickle import PICKLE_FIRST_BYTES, walk_pickle
from aiprov.scanning.report import Finding, Verdict
from aiprov.scanning.source import Buffer, Source, Truncated

HEAD = 64
MAX_DEPTH = 4  # containers inside containers deeper than this are refused
MAX_JSON_HEADER = 100 * 1024 * 1024  # safetensors allows 100 MB
MAX_TEXT = 64 * 1024 * 1024  # larger "text" is not a config file; it is unsupported


@dataclass
class Input:
    """One file's bytes: `open()` gives a fresh stream from the start; `data` is all of it when mapped."""

    label: str
    size: int
    open: Callable[[], BinaryIO]
    budget: Budget  # the top-level file's limits, shared by every container level inside it
    data: Buffer | None = None
    seekable: BinaryIO | None = None  # the same bytes as a seekable file, for zip archives
    depth: int = 0

    def source(self) -> Source:
        return Source(data=self.data) if self.data is not None else Source(stream=self.open())

    def head(self, n: int = HEAD) -> bytes:
        if self.data is not None:
            return bytes(self.data[:n])
        return self.open().read(n)


@dataclass
class Outcome:
    """A format and what its check found: `unsafe` findings reject, `unsupported` ones mean "cannot check"."""

    format: str
    unsafe: list[Finding] = field(default_factory=list)
    unsupported: list[Finding] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return "unsafe" if self.unsafe else "unsupported" if self.unsupported else "safe"

    def merge(self, other: Outcome, prefix: str = "") -> None:
        for mine, theirs in ((self.unsafe, other.unsafe), (self.unsupported, other.unsupported)):
            mine.extend(Finding(f.reason, prefix + f.detail) for f in theirs)


def scan_input(inp: Input) -> Outcome:
    """Detect `inp`'s format from its content and check it.

    Never raises for bad content: every problem is a finding. Raises OSError only when the file cannot be read.
    """
    from aiprov.scanning import containers

    if inp.size == 0:
        return Outcome("empty")
    head = inp.head()
    if inp.depth > MAX_DEPTH:
        return Outcome("nested", [Finding("too-deep", f"containers nested more than {MAX_DEPTH} levels")])
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return containers.scan_zip(inp)
    if head.startswith(b"\x93NUMPY"):
        return scan_npy(inp.source(), inp.size, inp.budget)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return scan_hdf5(inp)
    compression = containers.compression_of(head)
    if compression is not None:
        return containers.scan_compressed(inp, compression)
    if _is_safetensors(head, inp.size):
        return scan_safetensors(inp.source(), inp.size)
    if declares_pickle(head):
        return scan_pickle(inp)
    if head[0] == 0x08:
        return scan_onnx(inp)
    if head[0] in PICKLE_FIRST_BYTES:
        outcome = scan_pickle(inp)
        if outcome.format != "pickle?":
            return outcome
    outcome = scan_text(inp)
    if outcome.format == "unknown" and _zip_at_end(inp):
        return Outcome("zip", [Finding("bad-zip", "a zip archive with other data in front of it (a polyglot)")])
    return outcome


def reads_through(head: bytes, size: int) -> bool:
    """Whether `scan_input` reads most of a file that starts with `head` (a hint for I/O, never a verdict).

    Archives (every member's CRC is checked), compressed streams, pickles, ONNX and files small enough to be
    text are read through; numpy and safetensors headers, HDF5 and large binaries of no known format are read only
    at their start and end. A wrong answer costs speed, nothing else.
    """
    from aiprov.scanning import containers

    if head.startswith((b"\x93NUMPY", b"\x89HDF\r\n\x1a\n")) or _is_safetensors(head, size):
        return False
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or containers.compression_of(head) is not None:
        return True
    return declares_pickle(head) or head[:1] == b"\x08" or size <= MAX_TEXT


def _zip_at_end(inp: Input) -> bool:
    """True when the last 64 KiB hold a zip end record: zip readers would open this file despite its start."""
    n = min(inp.size, 65536 + 22)
    if inp.data is not None:
        tail = bytes(inp.data[inp.size - n :])
    elif inp.seekable is not None:
        inp.seekable.seek(inp.size - n)
        tail = inp.seekable.read(n)
    else:
        return False
    return b"PK\x05\x06" in tail


# pickle ----------------------------------------------------------------------------------------------


def declares_pickle(head: bytes) -> bool:
    """PROTO and a protocol the unpickler knows (0 to 5): what every pickle of protocol 2 or later starts with."""
    return len(head) > 1 and head[0] == 0x80 and head[1] <= 5


def scan_pickle(inp: Input) -> Outcome:
    """A whole file that is one pickle, loaded with joblib.load or pickle.load: nothing may follow STOP.

    A joblib file is walked as joblib reads it (array data between frames), and also as `pickle.load` would
    read it, so that bytes which are array data to one and opcodes to the other cannot hide a payload.

    A failure after an import is unsafe: what ran before it may be anything. A stream that both unpicklers reject
    before importing anything runs nothing when loaded. If it starts with PROTO and a protocol the unpickler
    knows, it declares itself a pickle and is a broken one: `unsupported`, registered but never loaded (neither
    `safe`, which would invite loading it, nor `unsafe`: one raw weights file in 11,000 starts with those two
    bytes by chance). Other such bytes are format "pickle?", to be checked as text or binary instead: text such
    as `import torch`, whose INST names the module `mport torch`, and a plain value followed by bytes that a
    second load would reject the same way (text such as `N.B. ...`).
    """
    declared = declares_pickle(inp.head(2))
    src = inp.source()
    result = walk_pickle(src, "joblib", inp.budget)
    if result.fails_before_import:
        if not declared:
            return Outcome("pickle?")
        assert result.failure is not None  # fails_before_import needs one
        why = f"it starts like a pickle but every unpickler fails before importing anything: {result.failure.detail}"
        return Outcome("pickle", unsupported=[Finding("broken-pickle", why)])
    out = Outcome("joblib" if result.joblib_arrays else "pickle", list(result.findings))
    try:
        trailing = result.complete and not src.at_end()
        if trailing:
            sample = src.remaining_sample()
            # A loader that reads a second pickle from the same file would get these bytes: walked as one.
            second = walk_pickle(src, "pickle", inp.budget)
            extra = second.end - result.end + src.drain()
            runs_nothing = second.fails_before_import and not _zip_at_end(inp)
            if runs_nothing and not result.globals and not result.findings:
                if not declared:
                    return Outcome("pickle?")
                why = f"a pickle of a plain value, then {extra} byte(s) that every unpickler fails on before importing"
                return Outcome("pickle", unsupported=[Finding("broken-pickle", why)])
    except OSError as e:
        out.unsafe.append(Finding("corrupt", f"the data after the pickle cannot be read: {e}"))
        trailing = False
    if trailing:
        out.unsafe.append(
            Finding(
                "trailing-data",
                f"{extra} byte(s) follow the pickle's STOP at offset {result.end} (starting {sample!r}): "
                "a polyglot or a second pickle",
            )
        )
    if result.joblib_arrays:
        # pickle.load reads array bytes as opcodes. For benign files that soon fails (or names a module that does
        # not exist) without running anything, so only globals known to be dangerous count from this walk.
        plain = walk_pickle(inp.source(), "pickle", inp.budget)
        for f in plain.findings:
            if f.reason in ("dangerous-global", "nested-unpickler"):
                out.unsafe.append(Finding(f.reason, f"read by pickle.load instead of joblib.load: {f.detail}"))
    return out


# numpy -----------------------------------------------------------------------------------------------

_NPY_KEYS = {"descr", "fortran_order", "shape"}
_DESCR = re.compile(r"[<>|=]?([biufcmMSUV])(\d*)(\[\w+\])?")


def _descr_itemsize(descr: Any) -> int | None:
    """Bytes per item of a numpy array-protocol descr (a string, or a list for structured dtypes).

    None when it holds Python objects or is not understood.
    """
    if isinstance(descr, str):
        m = _DESCR.fullmatch(descr)
        if m is None:
            return None
        kind, digits = m.group(1), m.group(2)
        if not digits:
            return 1 if kind == "b" else None
        return int(digits) * (4 if kind == "U" else 1)
    if isinstance(descr, list):
        total = 0
        for entry in descr:
            if not isinstance(entry, tuple) or len(entry) not in (2, 3):
                return None
            size = _descr_itemsize(entry[1])
            if size is None:
                return None
            count = 1
            if len(entry) == 3:
                shape = entry[2] if isinstance(entry[2], tuple) else (entry[2],)
                if not all(isinstance(n, int) and n >= 0 for n in shape):
                    return None
                count = math.prod(shape)
            total += size * count
        return total
    return None


def _has_object(descr: Any) -> bool:
    return "O" in repr(descr)


def scan_npy(src: Source, size: int, budget: Budget) -> Outcome:
    """Check a .npy file.

    The header is a Python literal (parsed, never evaluated); an object array stores a pickle, which is walked;
    numeric data must be exactly as long as the header says.
    """
    out = Outcome("npy")
    try:
        src.skip(6)
        major = src.read(2)[0]
        hlen = struct.unpack("<H" if major == 1 else "<I", src.read(2 if major == 1 else 4))[0]
        if major not in (1, 2, 3) or hlen > 1 << 20:
            out.unsafe.append(Finding("bad-header", f"npy version {major} header of {hlen} bytes"))
            return out
        header = ast.literal_eval(src.read(hlen).decode("utf-8" if major == 3 else "latin1"))
    except (Truncated, ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as e:
        out.unsafe.append(Finding("bad-header", f"npy header cannot be parsed: {e}"))
        return out
    shape = header.get("shape") if isinstance(header, dict) else None
    if (
        not isinstance(header, dict)
        or set(header) != _NPY_KEYS
        or not isinstance(shape, tuple)
        or not all(isinstance(n, int) and n >= 0 for n in shape)
    ):
        out.unsafe.append(Finding("bad-header", f"npy header is not a valid array description: {header!r:.200}"))
        return out
    descr = header["descr"]
    if _has_object(descr):
        # numpy.load(allow_pickle=True) unpickles the data: analyse it like any pickle, nothing may follow.
        out.format = "npy (object array)"
        result = walk_pickle(src, "pickle", budget)
        out.unsafe.extend(result.findings)
        if result.complete and not src.at_end():
            out.unsafe.append(Finding("trailing-data", f"{src.drain()} byte(s) follow the object array's pickle"))
        return out
    itemsize = _descr_itemsize(descr)
    if itemsize is None:
        out.unsupported.append(Finding("unsupported", f"npy dtype {descr!r:.80} is not understood"))
        return out
    expected = math.prod(shape) * itemsize
    actual = size - src.tell()
    if actual != expected:
        what = "truncated" if actual < expected else "trailing-data"
        out.unsafe.append(Finding(what, f"npy data is {actual} bytes; the header says {expected}"))
    else:
        src.drain()
    return out


# safetensors -----------------------------------------------------------------------------------------

_ST_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return head[8:9] == b"{" and 8 + n <= size


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in JSON object")
    return dict(pairs)


def scan_safetensors(src: Source, size: int) -> Outcome:
    """A safetensors file: its JSON header must describe tensors that exactly tile the data, no more, no less."""
    out = Outcome("safetensors")
    n = struct.unpack("<Q", src.read(8))[0]
    if n > MAX_JSON_HEADER:
        out.unsafe.append(Finding("bad-header", f"safetensors header of {n} bytes (the format allows 100 MB)"))
        return out
    try:
        header = json.loads(src.read(n), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as e:
        out.unsafe.append(Finding("bad-header", f"safetensors header is not valid JSON: {e}"))
        return out
    data_len = size - 8 - n
    spans: list[tuple[int, int]] = []
    problems: list[str] = []
    if not isinstance(header, dict):
        problems.append("header is not a JSON object")
        header = {}
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                problems.append("__metadata__ must map strings to strings")
            continue
        ok = (
            isinstance(info, dict)
            and set(info) == {"dtype", "shape", "data_offsets"}
            and info["dtype"] in _ST_DTYPES
            and isinstance(info["shape"], list)
            and all(isinstance(d, int) and d >= 0 for d in info["shape"])
            and isinstance(info["data_offsets"], list)
            and len(info["data_offsets"]) == 2
            and all(isinstance(o, int) for o in info["data_offsets"])
        )
        if not ok:
            problems.append(f"tensor {name!r:.60} is not described as dtype/shape/data_offsets")
            continue
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end or end - begin != math.prod(info["shape"]) * _ST_DTYPES[info["dtype"]]:
            problems.append(f"tensor {name!r:.60} offsets {begin}..{end} do not match its shape and dtype")
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            problems.append(f"tensor data {'overlaps' if begin < position else 'leaves a gap'} at byte {begin}")
        position = max(position, end)
    if position != data_len:
        problems.append(f"tensors cover {position} bytes of data but the file has {data_len}")
    out.unsafe.extend(Finding("bad-header", p) for p in problems[:20])
    if not problems:
        src.drain()
    return out


# ONNX ------------------------------------------------------------------------------------------------

# ModelProto's fields and their wire types (onnx.proto3): varint 0, length-delimited 2.
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_GRAPH_FIELDS = frozenset({1, 2, 5, 10, 11, 12, 13, 14, 15, 16})  # GraphProto: every one length-delimited
_MAX_IR_VERSION = 100  # ONNX is at IR version 11; far beyond that is not an ONNX model
_MAX_OPSET_ENTRY = 4096


def _varint(src: Source) -> int:
    value = shift = 0
    while True:
        b = src.read(1)[0]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(src: Source, end: int) -> Iterator[tuple[int, int, int]]:
    """(number, wire type, value) of each field of the protobuf message that ends at offset `end`.

    A length-delimited field's value is its length, with `src` at its first byte: the caller may read it whole,
    else it is skipped. Raises ValueError (or Truncated) for bytes that are not a well-formed message.
    """
    while src.tell() < end:
        key = _varint(src)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            yield number, wire, _varint(src)
        elif wire in (1, 5):
            src.skip(8 if wire == 1 else 4)
            yield number, wire, 0
        elif wire == 2:
            n = _varint(src)
            start = src.tell()
            if start + n > end:
                raise ValueError(f"field {number} runs past the end of its message")
            yield number, wire, n
            if src.tell() == start:
                src.skip(n)
            elif src.tell() != start + n:
                raise ValueError(f"field {number} was not read whole")
        else:
            raise ValueError(f"field {number} with wire type {wire}")
    if src.tell() != end:
        raise ValueError("a field runs past the end of its message")


def _opset_entry(data: bytes) -> None:
    """Check an OperatorSetIdProto: an optional UTF-8 domain (1) and a version (2). Raises ValueError."""
    src = Source(data=data)
    version = False
    for number, wire, value in _fields(src, len(data)):
        if (number, wire) == (1, 2):
            src.read(value).decode("utf-8")
        elif (number, wire) == (2, 0):
            version = True
        else:
            raise ValueError(f"opset_import has field {number} with wire type {wire}")
    if not version:
        raise ValueError("opset_import without a version")


def _check_model_proto(src: Source, size: int) -> None:
    """Check that the bytes are a structurally valid ONNX ModelProto. Raises ValueError or Truncated.

    Valid means: only ModelProto's fields, with their wire types; one ir_version in range; one graph, itself a
    well-formed message of GraphProto's fields; at least one well-formed opset_import. Nested messages inside
    the graph (nodes, tensors) are skipped, not parsed: this decides what the file is, not whether onnx loads it.
    """
    seen: dict[int, int] = {}
    for number, wire, value in _fields(src, size):
        if _ONNX_FIELDS.get(number) != wire:
            raise ValueError(f"ModelProto has no field {number} with wire type {wire}")
        seen[number] = seen.get(number, 0) + 1
        if number == 1 and not 1 <= value <= _MAX_IR_VERSION:
            raise ValueError(f"ir_version {value}")
        elif number == 7:
            for inner, inner_wire, _ in _fields(src, src.tell() + value):
                if inner not in _GRAPH_FIELDS or inner_wire != 2:
                    raise ValueError(f"GraphProto has no field {inner} with wire type {inner_wire}")
        elif number == 8:
            if value > _MAX_OPSET_ENTRY:
                raise ValueError(f"opset_import entry of {value} bytes")
            _opset_entry(src.read(value))
    if seen.get(1) != 1 or seen.get(7) != 1 or not seen.get(8):
        raise ValueError("ir_version, graph and opset_import are required (ir_version and graph once)")


def scan_onnx(inp: Input) -> Outcome:
    """Check an ONNX ModelProto.

    Only a structurally valid ModelProto (`_check_model_proto`) is ONNX; anything else that starts with the
    byte of an ir_version field is binary of an unknown format (unsupported, never loaded). ONNX holds no code;
    the remaining risk, external-data paths outside the model directory, is checked with the `onnx` package
    (without it the file is "unsupported").
    """
    try:
        _check_model_proto(inp.source(), inp.size)
    except (Truncated, ValueError, UnicodeDecodeError):
        return Outcome("unknown", unsupported=[Finding("unsupported", "binary content of an unknown format")])
    return _onnx_external_data(inp)


def _onnx_external_data(inp: Input) -> Outcome:
    out = Outcome("onnx")
    try:
        import onnx
    except ImportError:
        out.unsupported.append(
            Finding("unsupported", "the ml extra checks the model's external-data paths: pip install 'aiprov[ml]'")
        )
        return out
    try:
        model = onnx.load_model_from_string(inp.source().read(inp.size))
    except Exception as e:  # protobuf raises its own DecodeError family
        out.unsafe.append(Finding("bad-header", f"onnx cannot parse the model: {type(e).__name__}: {e}"))
        return out
    for tensor in _onnx_tensors(model.graph):
        for entry in tensor.external_data:
            if entry.key == "location" and (
                entry.value.startswith(("/", "\\")) or ".." in re.split(r"[\\/]", entry.value) or ":" in entry.value
            ):
                out.unsafe.append(
                    Finding("path-traversal", f"tensor {tensor.name!r} reads external data from {entry.value!r}")
                )
    return out


def _onnx_tensors(graph: Any) -> list[Any]:
    tensors = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
            tensors.extend(attr.tensors)
            if attr.HasField("g"):
                tensors.extend(_onnx_tensors(attr.g))
            for g in attr.graphs:
                tensors.extend(_onnx_tensors(g))
    return tensors


# HDF5 / Keras ----------------------------------------------------------------------------------------

_LAMBDA = re.compile(rb'"class_name":\s*"(Lambda|__lambda__)"')


def scan_hdf5(inp: Input) -> Outcome:
    """Check HDF5 (Keras .h5) as far as possible.

    It cannot be checked or loaded here: "unsupported", or "unsafe" when its model config holds a Lambda layer
    (marshalled Python bytecode).
    """
    out = Outcome("hdf5")
    src = inp.source()
    tail = b""
    while not src.at_end():
        inp.budget.check_time()
        chunk = tail + src.read(min(1 << 22, inp.size - src.tell()))
        if _LAMBDA.search(chunk):
            out.unsafe.append(Finding("keras-lambda", "the Keras model config holds a Lambda layer (Python code)"))
            return out
        tail = chunk[-64:]
    out.unsupported.append(Finding("unsupported", "HDF5 content cannot be checked here and is never loaded"))
    return out


# text and JSON ---------------------------------------------------------------------------------------


def _keras_lambda(doc: Any) -> bool:
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") in ("Lambda", "__lambda__"):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def scan_text(inp: Input) -> Outcome:
    """Check text: UTF-8 without NUL bytes is a config (JSON or other).

    Safe, unless it is a Keras config with a Lambda layer. Anything else is binary of an unknown format:
    unsupported.
    """
    unknown = Outcome("unknown", unsupported=[Finding("unsupported", "binary content of an unknown format")])
    if inp.size > MAX_TEXT:
        return unknown
    data = inp.source().read(inp.size)
    if b"\x00" in data:
        return unknown
    try:
        text = codecs.decode(data, "utf-8")
    except UnicodeDecodeError:
        return unknown
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return Outcome("text")
    if _keras_lambda(doc):
        return Outcome("json", [Finding("keras-lambda", "the Keras config holds a Lambda layer (Python code)")])
    return Outcome("json")
