"""Allow-list analysis of a pickle stream, opcode by opcode, without executing, importing or unpickling anything.

The walker is a symbolic unpickler: it keeps the stack, the mark stack and the memo as the real unpickler would,
but every value that would come from importing or calling is a placeholder (`Global`, `Obj`). That is enough to
know the strings STACK_GLOBAL receives (also through the memo), what every REDUCE / NEWOBJ / NEWOBJ_EX / OBJ /
INST calls and what every BUILD touches, and to size joblib's numpy arrays, whose bytes sit between pickle
frames and are followed by more pickle (a payload placed after them must be found).

Any parse error, truncation or unknown opcode rejects the file: the real unpickler has already executed
everything before the point where it fails, so a broken pickle is never "probably fine".
"""

from __future__ import annotations

import codecs
import functools
import importlib.util
import math
import re
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from aiprov.scanning import allowlist
from aiprov.scanning.allowlist import Kind
from aiprov.scanning.limits import Budget
from aiprov.scanning.report import Finding
from aiprov.scanning.source import Source, Truncated

Mode = Literal["pickle", "joblib", "torch"]
"""How the file will be loaded: plain `pickle.load`, `joblib.load` (arrays between frames), or `torch.load`
(persistent ids name storages in the same archive)."""

MAX_FINDINGS = 50
BIG = 4096  # bytes/str arguments longer than this are skipped, not kept: only short strings matter to the analysis
MAX_DEPTH = 8  # nested pickles (object arrays inside joblib arrays...) deeper than this are refused
CLOCK_EVERY = 1 << 14  # opcodes between two looks at the scan's deadline: reading a clock costs as much as 20 ops


class PickleError(Exception):
    """The stream is not a pickle the real unpickler would accept (or not one this scanner can follow)."""


class NotImportable(PickleError):
    """A global names a module or attribute that is not a dotted identifier: the unpickler fails to import it."""


@dataclass(eq=False, slots=True)
class Global:
    """What GLOBAL / STACK_GLOBAL / INST would import."""

    module: str
    name: str
    kind: Kind | None

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False, slots=True)
class Obj:
    """The result of a call or of NEWOBJ: `cls` is the class it is an instance of, when known."""

    cls: Global | None
    args: tuple[Any, ...] = ()
    state: Any = None


@dataclass(eq=False, slots=True)
class Blob:
    """A long bytes/str argument, skipped rather than kept."""

    size: int


@dataclass(slots=True)
class PickleResult:
    """What one walk found: refusals, every distinct global, storage keys it references, where it stopped."""

    findings: list[Finding] = field(default_factory=list)
    globals: dict[str, Kind | None] = field(default_factory=dict)
    storage_keys: set[str] = field(default_factory=set)
    joblib_arrays: int = 0
    complete: bool = False
    end: int = 0
    failure: Finding | None = None
    """Why the stream is not a pickle the real unpickler can load (it raises there too); None if it is complete
    or the walk stopped for a reason of its own (too deep, too large)."""

    @property
    def fails_before_import(self) -> bool:
        """The unpickler would raise before importing anything, so loading the stream runs nothing at all.

        Until a global is imported the stack holds only plain values (numbers, strings, containers), which no
        opcode can call, so nothing before the failure runs; and nothing after it is ever read. A persistent id
        or an extension code does not count as an import here: `pickle.load` and `joblib.load` raise at the first
        one (they have no `persistent_load`, and copyreg's extension registry is empty unless the loading process
        fills it), which is earlier still.
        """
        return (
            self.failure is not None
            and not self.globals
            and all(f == self.failure or f.reason in _LOADER_REFUSES for f in self.findings)
        )


_LOADER_REFUSES = ("persistent-id", "extension-code")
"""Findings of opcodes at which a plain `pickle.load` or `joblib.load` raises (see `fails_before_import`)."""
_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_WRAPPER_FIELDS = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
_DESCR = re.compile(r"[<>|=]?([biufcmMOSUV])(\d*)(\[\w+\])?")
_ITEMSIZE_DEFAULT = {"b": 1, "O": 8, "M": 8, "m": 8}


def _certainly_truthy(value: Any) -> bool:
    """True when `value` is a plain value known to be truthy; placeholders (`Obj`, `Global`) may be either."""
    if isinstance(value, Blob):
        return True
    if isinstance(value, (Obj, Global)):
        return False
    return bool(value)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, Global) else value.qualname
    return text if len(text) <= 80 else text[:77] + "..."


class Walker:
    """One pass over one pickle (nested pickles get their own Walker, sharing the result)."""

    def __init__(
        self, src: Source, mode: Mode, result: PickleResult, depth: int = 0, budget: Budget | None = None
    ) -> None:
        self.src = src
        self.budget = budget
        self.mode = mode
        self.result = result
        self.depth = depth
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.frame_end: int | None = None
        self._seen: set[tuple[str, str]] = set()

    # findings ---------------------------------------------------------------------------------------

    def flag(self, reason: str, detail: str) -> None:
        key = (reason, detail)
        if key in self._seen:
            return
        self._seen.add(key)
        findings = self.result.findings
        if len(findings) < MAX_FINDINGS:
            findings.append(Finding(reason, detail))
        elif len(findings) == MAX_FINDINGS:
            findings.append(Finding("too-many-findings", f"more than {MAX_FINDINGS} findings; the rest are omitted"))

    # the walk ---------------------------------------------------------------------------------------

    def run(self) -> None:
        """Walk to STOP. Raises PickleError or Truncated when the stream is not a complete, valid pickle."""
        src = self.src
        read = src.read
        handlers = _HANDLERS
        budget = self.budget
        ops = 0
        while True:
            ops += 1
            if budget is not None and ops % CLOCK_EVERY == 0:
                budget.check_time()
            at = src.tell()
            op = read(1)[0]
            handler = handlers[op]
            if handler is None:
                raise PickleError(f"unknown opcode 0x{op:02x} at offset {at}")
            try:
                if handler(self, at):
                    break
            except (IndexError, KeyError, TypeError, ValueError, UnicodeDecodeError, struct.error) as e:
                name = _OPNAMES.get(op, hex(op))
                raise PickleError(f"{name} at offset {at} fails: {type(e).__name__}: {e}") from None
            if self.frame_end is not None and src.tell() >= self.frame_end:
                # pickle.load (the C unpickler) treats frames as read-ahead hints only: an opcode may run past
                # its frame's end, and a FRAME may begin inside another. Refusing there would call a stream
                # "not a pickle" that pickle.load loads. (pickle._Unpickler, which joblib uses, is stricter.)
                self.frame_end = None
        self.result.complete = True
        self.result.end = src.tell()

    def pop_mark(self) -> list[Any]:
        items = self.stack
        if not self.metastack:
            raise PickleError(f"MARK missing before offset {self.src.tell()}")
        self.stack = self.metastack.pop()
        self.as_data(items, "MARK")
        return items

    def as_data(self, values: Any, opcode: str) -> None:
        """Flag an allowed FUNCTION that becomes data instead of being called where it is named.

        A reconstructor is safe as REDUCE's callable, with its arguments checked; kept as a value (an
        estimator's `func` attribute, a dict entry) it would be called later, at predict time, with the
        user's data, which this walk cannot check.
        """
        for value in values if isinstance(values, (list, tuple)) else (values,):
            if isinstance(value, Global) and value.kind is Kind.FUNCTION:
                self.flag(
                    "function-as-value",
                    f"{value.qualname} is kept as data ({opcode} at offset {self.src.tell()}), not called where named",
                )

    # globals and calls ------------------------------------------------------------------------------

    def resolve(self, module: Any, name: Any, opcode: str, at: int) -> Global:
        if not isinstance(module, str) or not isinstance(name, str):
            raise PickleError(
                f"{opcode} at offset {at} gets a computed module or name: {_short(module)}.{_short(name)}"
            )
        module, name = allowlist.normalize(module, name)
        kind = allowlist.classify(module, name)
        g = Global(module, name, kind)
        self.result.globals[g.qualname] = kind
        if kind is None:
            reason, why = allowlist.explain(module, name)
            self.flag(reason, f"{g.qualname} is not on the allow-list: {why} ({opcode} at offset {at})")
        return g

    def call(self, func: Any, args: Any, opcode: str, at: int, new: bool = False) -> Obj:
        """Check what a REDUCE / NEWOBJ / OBJ / INST would call; return the placeholder for its result."""
        if not isinstance(func, (Global, Obj)):
            # None, a number, a string, a container: no unpickler can call one (nor use it as a class).
            raise PickleError(f"{opcode} at offset {at} calls {_short(func)}, which is not callable")
        if not isinstance(func, Global):
            self.flag("computed-call", f"{opcode} at offset {at} calls a computed object {_short(func)}")
            return Obj(None, ())
        args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
        if func.kind is None:
            return Obj(None, args)  # already flagged when it was named
        if func.kind is Kind.VALUE or (new and func.kind is not Kind.CLASS):
            self.flag("not-callable", f"{opcode} at offset {at} calls {func.qualname}, which may only be referenced")
            return Obj(None, args)
        if func.kind is Kind.CLASS:
            return Obj(func, args)
        # An allowed FUNCTION: a reconstructor, whose arguments are checked where they could redirect a call.
        cls: Global | None = None
        if allowlist.needs_class_first_arg(func.module, func.name):
            first = args[0] if args else None
            want = allowlist.pyx_unpickle_class(func.module, func.name)
            if not (isinstance(first, Global) and first.kind is Kind.CLASS) or (
                want is not None and (first.module, first.name) != want
            ):
                self.flag(
                    "disallowed-call",
                    f"{func.qualname} at offset {at} must be given an allowed class, got {_short(first)}",
                )
            else:
                cls = first
        elif (func.module, func.name) == ("_codecs", "encode") and not (
            len(args) == 2 and isinstance(args[0], (str, Blob)) and args[1] in allowlist.ENCODE_CODECS
        ):
            self.flag("disallowed-call", f"_codecs.encode at offset {at} with unexpected arguments")
        return Obj(cls, args)

    # joblib arrays ----------------------------------------------------------------------------------

    def joblib_array(self, wrapper: Obj, at: int) -> Obj:
        """Pass over the array data joblib reads right after BUILD of a NumpyArrayWrapper (`read_array`)."""
        attrs: dict[str, Any] = dict(zip(_WRAPPER_FIELDS, wrapper.args, strict=False))
        state = wrapper.state
        if isinstance(state, tuple) and len(state) == 2:
            for part in state:
                if isinstance(part, dict):
                    attrs.update(part)
        elif isinstance(state, dict):
            attrs.update(state)
        if self.frame_end is not None:
            if self.src.tell() != self.frame_end:
                # joblib reads array bytes from the file, bypassing the unframer: bytes left in this frame would
                # be run as opcodes *after* the array by joblib, but before it by this parser.
                raise PickleError(f"joblib array at offset {at} starts inside a pickle frame")
            self.frame_end = None
        shape, dtype = attrs.get("shape"), attrs.get("dtype")
        info = _dtype_info(dtype)
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape) or info is None:
            raise PickleError(f"joblib array at offset {at} has a shape or dtype this scanner cannot size")
        itemsize, hasobject = info
        self.result.joblib_arrays += 1
        if hasobject:
            # joblib pickles object arrays as a nested pickle in the same stream (read by a fresh Unpickler).
            if self.depth >= MAX_DEPTH:
                raise PickleError(f"pickles nested deeper than {MAX_DEPTH} at offset {at}")
            # That inner Unpickler is a plain one: it does not read arrays after its own wrappers.
            Walker(self.src, "pickle", self.result, self.depth + 1, self.budget).run()
            return Obj(Global("numpy", "ndarray", Kind.CLASS))
        align = attrs.get("numpy_array_alignment_bytes")
        if align is not None:
            if not isinstance(align, int) or not 0 < align <= 255:
                raise PickleError(f"joblib array at offset {at} has alignment {_short(align)}")
            pad = self.src.read(1)[0]
            if pad > align or self.src.read(pad) != b"\xff" * pad:
                raise PickleError(f"joblib array padding at offset {at} is not what joblib writes")
        self.src.skip(math.prod(shape) * itemsize)
        return Obj(Global("numpy", "ndarray", Kind.CLASS))


def _dtype_info(dtype: Any) -> tuple[int, bool] | None:
    """(itemsize, has Python objects) of a pickled `numpy.dtype(descr, False, True)` with its BUILD state."""
    if not (isinstance(dtype, Obj) and dtype.cls is not None and dtype.cls.qualname == "numpy.dtype" and dtype.args):
        return None
    descr = dtype.args[0]
    if not isinstance(descr, str):
        return None
    m = _DESCR.fullmatch(descr)
    if m is None:
        return None
    kind, digits = m.group(1), m.group(2)
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    # numpy's NPY_ITEM_REFCOUNT flag (1) marks structured dtypes with object fields.
    hasobject = kind == "O" or bool(flags & 1)
    if elsize > 0:
        itemsize = elsize
    elif digits:
        itemsize = int(digits) * (4 if kind == "U" else 1)
    elif kind in _ITEMSIZE_DEFAULT:
        itemsize = _ITEMSIZE_DEFAULT[kind]
    else:
        return None
    return itemsize, hasobject


# opcode handlers: each returns True at STOP ---------------------------------------------------------


def _line(w: Walker) -> bytes:
    line = w.src.readline()
    return line[:-1]


def _push(value: Any) -> Any:
    def handler(w: Walker, at: int) -> None:
        w.stack.append(value)

    return handler


def _op_mark(w: Walker, at: int) -> None:
    w.metastack.append(w.stack)
    w.stack = []


def _op_stop(w: Walker, at: int) -> bool:
    w.as_data(w.stack.pop(), "STOP")
    return True


def _op_pop(w: Walker, at: int) -> None:
    if w.stack:
        w.stack.pop()
    else:
        w.pop_mark()


def _op_pop_mark(w: Walker, at: int) -> None:
    w.pop_mark()


def _op_dup(w: Walker, at: int) -> None:
    w.stack.append(w.stack[-1])


def _op_float(w: Walker, at: int) -> None:
    w.stack.append(float(_line(w)))


_C_OCTAL = re.compile(rb"\s*[+-]?0[0-7]+")
"""What C's strtol(s, &end, 0) reads as octal (`010` is 8) and Python's int(s, 0) refuses."""


def _op_int(w: Walker, at: int) -> None:
    data = _line(w)
    if data == b"00" or data == b"01":
        w.stack.append(data == b"01")
    elif _C_OCTAL.fullmatch(data):
        w.stack.append(int(data.replace(b"0", b"0o", 1), 0))  # the C unpickler's strtol takes it as octal
    else:
        w.stack.append(int(data, 0))


def _op_long(w: Walker, at: int) -> None:
    data = _line(w)
    w.stack.append(int(data[:-1] if data.endswith(b"L") else data, 0))  # both unpicklers parse with base 0


def _fixed_int(fmt: str, size: int) -> Any:
    def handler(w: Walker, at: int) -> None:
        w.stack.append(struct.unpack(fmt, w.src.read(size))[0])

    return handler


def _op_binfloat(w: Walker, at: int) -> None:
    w.stack.append(struct.unpack(">d", w.src.read(8))[0])


def _read_counted(w: Walker, at: int, fmt: str, size: int) -> bytes | Blob:
    """A length-prefixed argument: its bytes when short, skipped (a `Blob`) when long (it can only be data)."""
    n = struct.unpack(fmt, w.src.read(size))[0]
    if n < 0:
        raise PickleError(f"negative length at offset {at}")
    if n > BIG:
        w.src.skip(n)
        return Blob(n)
    data: bytes = w.src.read(n)
    return data


def _op_long_n(size: int) -> Any:
    fmt = "<B" if size == 1 else "<i"

    def handler(w: Walker, at: int) -> None:
        data = _read_counted(w, at, fmt, size)
        w.stack.append(data if isinstance(data, Blob) else int.from_bytes(data, "little", signed=True))

    return handler


def _as_text(data: bytes) -> str | bytes:
    try:
        return data.decode("ascii")  # the unpickler's default encoding for Python 2 str
    except UnicodeDecodeError:
        return data


def _op_string(w: Walker, at: int) -> None:
    data = _line(w)
    if len(data) < 2 or data[0] != data[-1] or data[:1] not in (b'"', b"'"):
        raise PickleError(f"STRING at offset {at} is not quoted")
    w.stack.append(_as_text(codecs.escape_decode(data[1:-1])[0]))


def _counted(fmt: str, size: int, kind: Literal["bytes", "str", "str2"]) -> Any:
    """A length-prefixed argument: kept when short, skipped when long (it can only be data)."""

    def handler(w: Walker, at: int) -> None:
        data = _read_counted(w, at, fmt, size)
        if isinstance(data, Blob):
            w.stack.append(data)
        elif kind == "str":
            w.stack.append(data.decode("utf-8", "surrogatepass"))
        elif kind == "str2":
            w.stack.append(_as_text(data))
        else:
            w.stack.append(data)

    return handler


def _op_unicode(w: Walker, at: int) -> None:
    w.stack.append(_line(w).decode("raw-unicode-escape"))


def _op_persid(w: Walker, at: int) -> None:
    _persistent(w, _line(w).decode("ascii"), at)


def _op_binpersid(w: Walker, at: int) -> None:
    _persistent(w, w.stack.pop(), at)


def _persistent(w: Walker, pid: Any, at: int) -> None:
    """torch.load resolves ('storage', StorageClass, key, location, numel) to a member of the same archive."""
    if (
        w.mode == "torch"
        and isinstance(pid, tuple)
        and len(pid) == 5
        and pid[0] == "storage"
        and isinstance(pid[1], Global)
        and pid[1].kind is Kind.CLASS
        and isinstance(pid[2], str)
        and isinstance(pid[3], str)
        and isinstance(pid[4], int)
    ):
        w.result.storage_keys.add(pid[2])
        w.stack.append(Obj(pid[1]))
        return
    w.flag("persistent-id", f"persistent id {_short(pid)} at offset {at} (only torch storages are accepted)")
    w.stack.append(Obj(None))


def _op_reduce(w: Walker, at: int) -> None:
    args = w.stack.pop()
    func = w.stack[-1]
    if not isinstance(args, tuple):
        raise PickleError(f"REDUCE at offset {at} has non-tuple arguments")
    w.stack[-1] = w.call(func, args, "REDUCE", at)


def _op_build(w: Walker, at: int) -> None:
    state = w.stack.pop()
    w.as_data(state, "BUILD")
    inst = w.stack[-1]
    if isinstance(inst, Global):
        w.flag("monkey-patch", f"BUILD at offset {at} sets attributes on {inst.qualname} itself")
        return
    if not isinstance(inst, Obj):
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)  # (state, slotstate)
        if any(_certainly_truthy(part) for part in parts):
            raise PickleError(f"BUILD at offset {at} sets state on a plain value {_short(inst)}")
        # A falsy state (None, {}, or a pair of them) on a plain value is a no-op to the unpicklers: pickle.load
        # accepts None (and (None, {})), pickle._Unpickler any falsy state. The load goes on.
        return
    inst.state = state
    cls = inst.cls
    if w.mode == "joblib" and cls is not None and (cls.module, cls.name) == _WRAPPER:
        w.stack[-1] = w.joblib_array(inst, at)


def _importable(module: Any, name: Any, opcode: str, at: int) -> None:
    """Raise NotImportable when `find_class` fails before importing anything.

    `import torch` read as INST gives the module `mport torch`, which no import can name, so the load fails right
    there, before running anything: such a stream is text that starts with an opcode byte, not a pickle. A valid
    top-level package is imported before a bad submodule or attribute name fails (`os` + `not a name` imports
    `os`, running its code), so such a global counts as an import, resolved and refused like any other, when the
    package exists: in the standard library or installed here. A package unknown here with a bad name after it is
    text (`cat` then `big dog` in a labels file); a machine that has such a package and loads the file imports it
    and then fails, and that package was installed by its owner.
    """
    if not isinstance(module, str):
        return
    top = module.split(".")[0]
    if not top.isidentifier():
        raise NotImportable(f"{opcode} at offset {at} names {_short(module)}, which cannot be imported")
    if _dotted(module) and (not isinstance(name, str) or _dotted(name)):
        return
    if not _known_package(top):
        raise NotImportable(f"{opcode} at offset {at} names {_short(module)}.{_short(name)}, which cannot be imported")


def _dotted(value: str) -> bool:
    return all(part.isidentifier() for part in value.split("."))


@functools.lru_cache(maxsize=1024)
def _known_package(top: str) -> bool:
    """A top-level module that exists in the standard library or this environment (found, never imported)."""
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _global_line(w: Walker, at: int, opcode: str) -> Global:
    module = _line(w).decode("utf-8")
    name = _line(w).decode("utf-8")
    _importable(module, name, opcode, at)
    return w.resolve(module, name, opcode, at)


def _op_global(w: Walker, at: int) -> None:
    w.stack.append(_global_line(w, at, "GLOBAL"))


def _op_stack_global(w: Walker, at: int) -> None:
    name = w.stack.pop()
    module = w.stack.pop()
    _importable(module, name, "STACK_GLOBAL", at)
    w.stack.append(w.resolve(module, name, "STACK_GLOBAL", at))


def _op_inst(w: Walker, at: int) -> None:
    cls = _global_line(w, at, "INST")
    args = w.pop_mark()
    w.stack.append(w.call(cls, args, "INST", at))


def _op_obj(w: Walker, at: int) -> None:
    args = w.pop_mark()
    cls = args.pop(0)
    w.stack.append(w.call(cls, args, "OBJ", at))


def _op_newobj(w: Walker, at: int) -> None:
    args = w.stack.pop()
    cls = w.stack.pop()
    w.stack.append(w.call(cls, args, "NEWOBJ", at, new=True))


def _op_newobj_ex(w: Walker, at: int) -> None:
    kwargs = w.stack.pop()
    args = w.stack.pop()
    cls = w.stack.pop()
    if isinstance(kwargs, dict):
        for value in kwargs.values():
            if isinstance(value, Global) and value.kind is not Kind.CLASS:
                w.flag("disallowed-call", f"NEWOBJ_EX at offset {at} passes {value.qualname}")
    w.stack.append(w.call(cls, args, "NEWOBJ_EX", at, new=True))


def _op_dict(w: Walker, at: int) -> None:
    items = w.pop_mark()
    w.stack.append({items[i]: items[i + 1] for i in range(0, len(items) - 1, 2)})


def _op_list(w: Walker, at: int) -> None:
    items = w.pop_mark()  # before touching w.stack: pop_mark replaces it
    w.stack.append(items)


def _op_tuple(w: Walker, at: int) -> None:
    items = tuple(w.pop_mark())
    w.stack.append(items)


def _op_tuple_n(n: int) -> Any:
    def handler(w: Walker, at: int) -> None:
        items = tuple(w.stack[-n:])
        if len(items) != n:
            raise PickleError(f"TUPLE{n} at offset {at} with {len(items)} item(s) on the stack")
        del w.stack[-n:]
        w.as_data(items, f"TUPLE{n}")
        w.stack.append(items)

    return handler


def _container(w: Walker, at: int, opcode: str) -> Any:
    target = w.stack[-1]
    if isinstance(target, Global):
        w.flag("monkey-patch", f"{opcode} at offset {at} modifies {target.qualname} itself")
    return target


def _op_append(w: Walker, at: int) -> None:
    value = w.stack.pop()
    w.as_data(value, "APPEND")
    target = _container(w, at, "APPEND")
    if isinstance(target, list):
        target.append(value)


def _op_appends(w: Walker, at: int) -> None:
    items = w.pop_mark()
    target = _container(w, at, "APPENDS")
    if isinstance(target, list):
        target.extend(items)


def _op_setitem(w: Walker, at: int) -> None:
    value = w.stack.pop()
    key = w.stack.pop()
    w.as_data((key, value), "SETITEM")
    target = _container(w, at, "SETITEM")
    if isinstance(target, dict):
        target[key] = value


def _op_setitems(w: Walker, at: int) -> None:
    items = w.pop_mark()
    target = _container(w, at, "SETITEMS")
    if isinstance(target, dict):
        for i in range(0, len(items) - 1, 2):
            target[items[i]] = items[i + 1]


def _op_additems(w: Walker, at: int) -> None:
    w.pop_mark()
    _container(w, at, "ADDITEMS")


def _op_frozenset(w: Walker, at: int) -> None:
    w.pop_mark()
    w.stack.append(Obj(Global("builtins", "frozenset", Kind.CLASS)))


def _op_get(w: Walker, at: int) -> None:
    w.stack.append(w.memo[int(_line(w))])


def _memo_get(fmt: str, size: int) -> Any:
    def handler(w: Walker, at: int) -> None:
        w.stack.append(w.memo[struct.unpack(fmt, w.src.read(size))[0]])

    return handler


def _op_put(w: Walker, at: int) -> None:
    index = int(_line(w))
    if index < 0:
        raise PickleError(f"negative PUT index at offset {at}")
    w.memo[index] = w.stack[-1]


def _memo_put(fmt: str, size: int) -> Any:
    def handler(w: Walker, at: int) -> None:
        w.memo[struct.unpack(fmt, w.src.read(size))[0]] = w.stack[-1]

    return handler


def _op_memoize(w: Walker, at: int) -> None:
    w.memo[len(w.memo)] = w.stack[-1]


def _op_proto(w: Walker, at: int) -> None:
    proto = w.src.read(1)[0]
    if proto > 5:
        raise PickleError(f"unsupported pickle protocol {proto} at offset {at}")


def _op_frame(w: Walker, at: int) -> None:
    size = struct.unpack("<Q", w.src.read(8))[0]
    # A FRAME inside another is accepted by pickle.load (see `Walker.run`): the newest one is the current frame.
    if size:
        w.frame_end = w.src.tell() + size


def _op_ext(size: int) -> Any:
    def handler(w: Walker, at: int) -> None:
        code = int.from_bytes(w.src.read(size), "little")
        w.flag("extension-code", f"EXT{size} at offset {at} names global #{code} through the copyreg registry")
        w.stack.append(Global("copyreg", f"extension {code}", None))

    return handler


def _op_next_buffer(w: Walker, at: int) -> None:
    raise PickleError(f"NEXT_BUFFER at offset {at}: a file cannot supply an out-of-band buffer")


def _op_readonly_buffer(w: Walker, at: int) -> None:
    """A memoryview of the top of the stack: the unpicklers accept it on any bytes-like value, buffers or not."""
    top = w.stack[-1]
    if isinstance(top, (str, int, float, list, tuple, dict)) or top is None:
        raise PickleError(f"READONLY_BUFFER at offset {at} on {_short(top)}, which has no buffer")


_HANDLERS: list[Any] = [None] * 256
_OPNAMES: dict[int, str] = {}


def _register(code: str | int, name: str, handler: Any) -> None:
    op = code if isinstance(code, int) else ord(code)
    _HANDLERS[op] = handler
    _OPNAMES[op] = name


for _code, _name, _handler in (
    ("(", "MARK", _op_mark),
    (".", "STOP", _op_stop),
    ("0", "POP", _op_pop),
    ("1", "POP_MARK", _op_pop_mark),
    ("2", "DUP", _op_dup),
    ("F", "FLOAT", _op_float),
    ("I", "INT", _op_int),
    ("J", "BININT", _fixed_int("<i", 4)),
    ("K", "BININT1", _fixed_int("<B", 1)),
    ("L", "LONG", _op_long),
    ("M", "BININT2", _fixed_int("<H", 2)),
    ("N", "NONE", _push(None)),
    ("P", "PERSID", _op_persid),
    ("Q", "BINPERSID", _op_binpersid),
    ("R", "REDUCE", _op_reduce),
    ("S", "STRING", _op_string),
    ("T", "BINSTRING", _counted("<i", 4, "str2")),
    ("U", "SHORT_BINSTRING", _counted("<B", 1, "str2")),
    ("V", "UNICODE", _op_unicode),
    ("X", "BINUNICODE", _counted("<I", 4, "str")),
    ("a", "APPEND", _op_append),
    ("b", "BUILD", _op_build),
    ("c", "GLOBAL", _op_global),
    ("d", "DICT", _op_dict),
    ("}", "EMPTY_DICT", None),
    ("e", "APPENDS", _op_appends),
    ("g", "GET", _op_get),
    ("h", "BINGET", _memo_get("<B", 1)),
    ("i", "INST", _op_inst),
    ("j", "LONG_BINGET", _memo_get("<I", 4)),
    ("l", "LIST", _op_list),
    ("]", "EMPTY_LIST", None),
    ("o", "OBJ", _op_obj),
    ("p", "PUT", _op_put),
    ("q", "BINPUT", _memo_put("<B", 1)),
    ("r", "LONG_BINPUT", _memo_put("<I", 4)),
    ("s", "SETITEM", _op_setitem),
    ("t", "TUPLE", _op_tuple),
    (")", "EMPTY_TUPLE", _push(())),
    ("u", "SETITEMS", _op_setitems),
    ("G", "BINFLOAT", _op_binfloat),
    (0x80, "PROTO", _op_proto),
    (0x81, "NEWOBJ", _op_newobj),
    (0x82, "EXT1", _op_ext(1)),
    (0x83, "EXT2", _op_ext(2)),
    (0x84, "EXT4", _op_ext(4)),
    (0x85, "TUPLE1", _op_tuple_n(1)),
    (0x86, "TUPLE2", _op_tuple_n(2)),
    (0x87, "TUPLE3", _op_tuple_n(3)),
    (0x88, "NEWTRUE", _push(True)),
    (0x89, "NEWFALSE", _push(False)),
    (0x8A, "LONG1", _op_long_n(1)),
    (0x8B, "LONG4", _op_long_n(4)),
    ("B", "BINBYTES", _counted("<I", 4, "bytes")),
    ("C", "SHORT_BINBYTES", _counted("<B", 1, "bytes")),
    (0x8C, "SHORT_BINUNICODE", _counted("<B", 1, "str")),
    (0x8D, "BINUNICODE8", _counted("<Q", 8, "str")),
    (0x8E, "BINBYTES8", _counted("<Q", 8, "bytes")),
    (0x8F, "EMPTY_SET", None),
    (0x90, "ADDITEMS", _op_additems),
    (0x91, "FROZENSET", _op_frozenset),
    (0x92, "NEWOBJ_EX", _op_newobj_ex),
    (0x93, "STACK_GLOBAL", _op_stack_global),
    (0x94, "MEMOIZE", _op_memoize),
    (0x95, "FRAME", _op_frame),
    (0x96, "BYTEARRAY8", _counted("<Q", 8, "bytes")),
    (0x97, "NEXT_BUFFER", _op_next_buffer),
    (0x98, "READONLY_BUFFER", _op_readonly_buffer),
):
    _register(_code, _name, _handler)


def _empty(factory: Any) -> Any:
    def handler(w: Walker, at: int) -> None:
        w.stack.append(factory())

    return handler


_HANDLERS[ord("}")] = _empty(dict)
_HANDLERS[ord("]")] = _empty(list)
_HANDLERS[0x8F] = _empty(lambda: Obj(Global("builtins", "set", Kind.CLASS)))

PICKLE_FIRST_BYTES = frozenset(op for op, h in enumerate(_HANDLERS) if h is not None)
"""Bytes a pickle can start with (any opcode; protocol 2+ pickles start with PROTO, 0x80)."""


def walk_pickle(src: Source, mode: Mode = "pickle", budget: Budget | None = None) -> PickleResult:
    """Analyse one pickle from `src`'s position to its STOP, leaving `src` just after it.

    Never raises for bad input: parse errors, truncation and unknown opcodes become findings (`complete` is
    then False). The caller decides what may follow STOP (for a whole file: nothing). Raises LimitExceeded
    when `budget`'s deadline passes (or its stream decompresses past it).
    """
    result = PickleResult()
    walker = Walker(src, mode, result, budget=budget)
    failure: Finding | None = None
    try:
        walker.run()
    except Truncated as e:
        failure = Finding("truncated", f"the pickle is truncated: {e}")
    except PickleError as e:
        failure = Finding("parse-error", str(e))
    except RecursionError:
        walker.flag("parse-error", "structure nested too deeply to analyse")
    except MemoryError:
        walker.flag("parse-error", "structure too large to analyse")
    except (OSError, EOFError) as e:
        failure = Finding("corrupt", f"the data cannot be read: {e}")
    if failure is not None:
        walker.flag(failure.reason, failure.detail)
        result.failure = failure
    result.end = src.tell()
    return result
