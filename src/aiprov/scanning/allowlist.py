"""Which globals a pickle may name: OUR allow-list of what the supported frameworks need to rebuild a model.

Pure policy: strings in, a decision out. Nothing here imports the modules it names, and nothing is ever taken
from the scanned file's own metadata (MLflow once trusted a model's list of its own types).

Three kinds of allowed global:
- CLASS: may be referenced, instantiated (REDUCE, NEWOBJ, OBJ, INST) and given state by BUILD. Constructing a
  scikit-learn estimator or a numpy dtype only stores what it is given; the only callables it could be given are
  themselves on this list.
- FUNCTION: a known reconstructor that REDUCE may call (numpy's `_reconstruct`, `copyreg._reconstructor`, the
  torch tensor rebuilders...). Some take a class as their first argument; `CLASS_FIRST_ARG` says which, so that
  `copyreg._reconstructor(os.system, ...)`-style indirection cannot smuggle a call.
- VALUE: may be referenced but never called (singletons such as Ellipsis).

scikit-learn is allowed by module prefix, but only for class-like names (CamelCase, as scikit-learn names every
class): its lower-case functions include ones that run code (e.g. `sklearn.utils.parallel.delayed`, dataset
fetchers that download), so functions are allowed one by one. Sub-packages for tests, vendored code, parallelism,
dataset fetching and build tooling are refused outright.
"""

from __future__ import annotations

import _compat_pickle
import re
from enum import Enum


class Kind(Enum):
    """What a pickle may do with an allowed global."""

    CLASS = "class"
    FUNCTION = "function"
    VALUE = "value"


_BUILTIN_CLASSES = frozenset(
    [
        "object",
        "set",
        "frozenset",
        "slice",
        "complex",
        "bytearray",
        "bytes",
        "list",
        "dict",
        "tuple",
        "int",
        "float",
        "str",
        "bool",
        "range",
    ]
)
_NUMPY_SCALARS = frozenset(
    [
        "bool_",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "longdouble",
        "complex64",
        "complex128",
        "clongdouble",
        "str_",
        "bytes_",
        "void",
        "intc",
        "uintc",
        "intp",
        "uintp",
    ]
)
_TORCH_STORAGES = frozenset(
    f"{t}Storage"
    for t in [
        "Float",
        "Double",
        "Half",
        "BFloat16",
        "Long",
        "Int",
        "Short",
        "Char",
        "Byte",
        "Bool",
        "ComplexFloat",
        "ComplexDouble",
    ]
)
_SPARSE = frozenset(f"{f}_{k}" for f in ("bsr", "coo", "csc", "csr", "dia", "dok", "lil") for k in ("matrix", "array"))

_EXACT: dict[tuple[str, str], Kind] = {
    **{("builtins", n): Kind.CLASS for n in _BUILTIN_CLASSES},
    ("builtins", "Ellipsis"): Kind.VALUE,
    ("builtins", "NotImplemented"): Kind.VALUE,
    **{("collections", n): Kind.CLASS for n in ("OrderedDict", "defaultdict", "deque", "Counter")},
    # copyreg's reconstructors create an instance of a class without calling its __init__.
    ("copyreg", "_reconstructor"): Kind.FUNCTION,
    ("copyreg", "__newobj__"): Kind.FUNCTION,
    ("copyreg", "__newobj_ex__"): Kind.FUNCTION,
    # Protocols 0-2 spell a bytes object as _codecs.encode(text, "latin1"); ENCODE_ARGS pins the codec.
    ("_codecs", "encode"): Kind.FUNCTION,
    ("numpy", "ndarray"): Kind.CLASS,
    ("numpy", "dtype"): Kind.CLASS,
    **{("numpy", n): Kind.CLASS for n in _NUMPY_SCALARS},
    **{(m, "_reconstruct"): Kind.FUNCTION for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): Kind.FUNCTION for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): Kind.FUNCTION for m in ("numpy.core.numeric", "numpy._core.numeric")},
    **{
        ("numpy.random._pickle", n): Kind.FUNCTION
        for n in ("__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor")
    },
    ("numpy.random._mt19937", "MT19937"): Kind.CLASS,
    ("numpy.random._pcg64", "PCG64"): Kind.CLASS,
    ("numpy.random._pcg64", "PCG64DXSM"): Kind.CLASS,
    ("numpy.random._philox", "Philox"): Kind.CLASS,
    ("numpy.random._sfc64", "SFC64"): Kind.CLASS,
    ("numpy.random.bit_generator", "SeedSequence"): Kind.CLASS,
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"): Kind.FUNCTION,
    ("numpy.random.mtrand", "RandomState"): Kind.CLASS,
    ("numpy.random._generator", "Generator"): Kind.CLASS,
    # joblib's placeholder for an array whose bytes follow the pickle frame; the scanner parses that data.
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): Kind.CLASS,
    # scikit-learn's Cython trees pickle through `newObj(cls)`, which is `cls.__new__(cls)`.
    **{
        (m, "newObj"): Kind.FUNCTION
        for m in (
            "sklearn.metrics._dist_metrics",
            "sklearn.neighbors._kd_tree",
            "sklearn.neighbors._ball_tree",
            "sklearn.neighbors._binary_tree",
        )
    },
    **{("torch._utils", n): Kind.FUNCTION for n in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter")},
    **{("torch", n): Kind.CLASS for n in _TORCH_STORAGES},
    ("torch", "Size"): Kind.CLASS,
}

CLASS_FIRST_ARG = frozenset(
    {
        ("copyreg", "_reconstructor"),
        ("copyreg", "__newobj__"),
        ("copyreg", "__newobj_ex__"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("sklearn.metrics._dist_metrics", "newObj"),
        ("sklearn.neighbors._kd_tree", "newObj"),
        ("sklearn.neighbors._ball_tree", "newObj"),
        ("sklearn.neighbors._binary_tree", "newObj"),
    }
)
"""Reconstructors whose first argument is a class they instantiate: it must be an allowed CLASS."""

ENCODE_CODECS = frozenset({"latin1", "latin-1"})
"""The only codecs `_codecs.encode` may be called with (what pickle protocols 0-2 write for bytes)."""

_SKLEARN_MODULE = re.compile(r"sklearn(\.[A-Za-z_][A-Za-z0-9_]*)*")
_SKLEARN_DENIED_PARTS = frozenset(
    {
        "tests",
        "_testing",
        "conftest",
        "externals",
        "experimental",
        "_build_utils",
        "__check_build",
        "datasets",
        "parallel",
        "_joblib",
        "fixes",
        "_show_versions",
        "_openmp_helpers",
        "_distributor_init",
        "_config",
    }
)
_CLASS_NAME = re.compile(r"_?[A-Z][A-Za-z0-9_]*")
# Class-like names a scikit-learn module might re-export from the standard library or joblib: never allowed.
_DENIED_CLASS_NAMES = frozenset(
    [
        "Popen",
        "Path",
        "PosixPath",
        "WindowsPath",
        "Pool",
        "Thread",
        "Process",
        "Parallel",
        "Memory",
        "TemporaryDirectory",
        "NamedTemporaryFile",
        "ThreadPoolExecutor",
        "ProcessPoolExecutor",
        "ZipFile",
        "TarFile",
        "Unpickler",
        "Pickler",
    ]
)
_PYX_UNPICKLE = re.compile(r"__pyx_unpickle_([A-Za-z_][A-Za-z0-9_]*)")
_SCIPY_SPARSE_MODULE = re.compile(r"scipy\.sparse(\.[A-Za-z_][A-Za-z0-9_]*)?")
_NUMPY_DTYPES = re.compile(r"[A-Z][A-Za-z0-9]*DType")


def normalize(module: str, name: str) -> tuple[str, str]:
    """The (module, name) Python 3 actually imports for a pickle global, applying pickle's Python 2 renames.

    The unpickler maps names such as `__builtin__` and `copy_reg` for protocols below 3; checking the mapped name
    means a Python 2 spelling can neither sneak past nor be wrongly refused.
    """
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _sklearn_module_ok(module: str) -> bool:
    return _SKLEARN_MODULE.fullmatch(module) is not None and not (_SKLEARN_DENIED_PARTS.intersection(module.split(".")))


def classify(module: str, name: str) -> Kind | None:
    """What a pickle may do with `module.name` (already normalized), or None when it is not allowed at all."""
    kind = _EXACT.get((module, name))
    if kind is not None:
        return kind
    if "." in name:
        return None  # a dotted name makes find_class walk attributes (e.g. `sklearn.base.os.system`)
    if module == "numpy.dtypes" and _NUMPY_DTYPES.fullmatch(name):
        return Kind.CLASS
    if _SCIPY_SPARSE_MODULE.fullmatch(module) and name in _SPARSE:
        return Kind.CLASS
    if _sklearn_module_ok(module):
        if _CLASS_NAME.fullmatch(name) and name not in _DENIED_CLASS_NAMES:
            return Kind.CLASS
        if _PYX_UNPICKLE.fullmatch(name):
            return Kind.FUNCTION  # Cython's generated unpickler: `cls.__new__(cls)` plus state, checksummed
    return None


def pyx_unpickle_class(name: str) -> str | None:
    """For a Cython `__pyx_unpickle_Foo` helper, the class name `Foo` it must be given; else None."""
    m = _PYX_UNPICKLE.fullmatch(name)
    return m.group(1) if m else None


def needs_class_first_arg(module: str, name: str) -> bool:
    """True for reconstructors whose first argument must be an allowed class."""
    return (module, name) in CLASS_FIRST_ARG or pyx_unpickle_class(name) is not None


_NESTED_UNPICKLERS = {
    ("pickle", "loads"),
    ("pickle", "load"),
    ("pickle", "Unpickler"),
    ("pickle", "_loads"),
    ("pickle", "_load"),
    ("pickle", "_Unpickler"),
    ("_pickle", "loads"),
    ("_pickle", "load"),
    ("_pickle", "Unpickler"),
    ("joblib", "load"),
    ("joblib.numpy_pickle", "load"),
    ("joblib.numpy_pickle", "NumpyUnpickler"),
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
    ("numpy", "load"),
    ("numpy.lib.npyio", "load"),
    ("numpy.lib._npyio_impl", "load"),
    ("numpy.lib.format", "read_array"),
    ("numpy", "loads"),
    ("torch", "load"),
    ("torch.serialization", "load"),
    ("marshal", "loads"),
    ("marshal", "load"),
    ("dill", "loads"),
    ("dill", "load"),
    ("cloudpickle", "loads"),
    ("cloudpickle", "load"),
    ("shelve", "open"),
}

_DANGEROUS_MODULES = {
    "os": "operating-system calls (commands, files, processes)",
    "posix": "operating-system calls (commands, files, processes)",
    "nt": "operating-system calls (commands, files, processes)",
    "subprocess": "runs commands",
    "pty": "spawns processes",
    "commands": "runs commands",
    "shutil": "deletes and copies files",
    "socket": "opens network connections",
    "ssl": "opens network connections",
    "http": "opens network connections",
    "urllib": "opens network connections",
    "requests": "opens network connections",
    "ftplib": "opens network connections",
    "smtplib": "opens network connections",
    "telnetlib": "opens network connections",
    "webbrowser": "opens a browser (runs a program)",
    "ctypes": "calls native code",
    "cffi": "calls native code",
    "importlib": "imports arbitrary modules",
    "imp": "imports arbitrary modules",
    "pkgutil": "imports arbitrary modules",
    "runpy": "runs Python code",
    "code": "runs Python code",
    "codeop": "compiles Python code",
    "pdb": "runs Python code",
    "bdb": "runs Python code",
    "timeit": "runs Python code",
    "trace": "runs Python code",
    "profile": "runs Python code",
    "cProfile": "runs Python code",
    "doctest": "runs Python code",
    "pydoc": "imports arbitrary modules",
    "sys": "reaches interpreter internals",
    "types": "builds functions and code objects",
    "operator": "reaches arbitrary attributes and methods (attrgetter/methodcaller gadgets)",
    "functools": "binds arbitrary callables (partial gadgets)",
    "multiprocessing": "spawns processes",
    "threading": "starts threads",
    "asyncio": "runs subprocesses and network I/O",
    "io": "opens files",
    "pathlib": "touches files",
    "tempfile": "creates files",
    "zipfile": "reads and writes archives",
    "tarfile": "reads and writes archives",
    "glob": "lists files",
    "signal": "changes signal handling",
    "gc": "reaches every live object",
    "inspect": "reaches interpreter internals",
    "site": "changes the import system",
    "setuptools": "runs build code",
    "distutils": "runs build code",
    "pip": "installs and runs code",
}
_DANGEROUS_BUILTINS = {
    "eval": "runs Python code",
    "exec": "runs Python code",
    "compile": "compiles Python code",
    "__import__": "imports arbitrary modules",
    "getattr": "reaches arbitrary attributes (a gadget for any method)",
    "setattr": "changes arbitrary attributes",
    "delattr": "changes arbitrary attributes",
    "open": "opens files",
    "input": "reads the terminal",
    "breakpoint": "starts a debugger",
    "globals": "reaches interpreter internals",
    "vars": "reaches interpreter internals",
    "type": "builds classes",
    "print": "writes output",
}


def explain(module: str, name: str) -> tuple[str, str]:
    """A finding reason and a phrase for a refused global, for the report only (the decision is `classify`)."""
    if (module, name) in _NESTED_UNPICKLERS or (name in {"loads", "load"} and "pickle" in module):
        return "nested-unpickler", "a nested unpickler/loader: it would unpickle data the scanner cannot see"
    if module == "builtins" and name in _DANGEROUS_BUILTINS:
        return "dangerous-global", _DANGEROUS_BUILTINS[name]
    top = module.split(".")[0]
    if top in _DANGEROUS_MODULES:
        return "dangerous-global", _DANGEROUS_MODULES[top]
    return "unknown-global", "not on the allow-list"
