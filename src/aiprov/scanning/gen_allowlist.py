"""Regenerate `allowlist_generated.py`, the exact allow-list of scikit-learn, numpy and scipy names.

    python -m aiprov.scanning.gen_allowlist          # rewrites src/aiprov/scanning/allowlist_generated.py

A developer tool, never imported by the scanner: it imports scikit-learn, numpy and scipy to see what each name
really is, which is exactly what the scanner must never do with the names a scanned file gives it. What it
writes is data, so the scanner decides by lookup alone. tests/scanning/test_allowlist.py runs `generate()`
against the installed libraries and fails when the committed file differs or names anything defined elsewhere.

The rule for a scikit-learn class `(module, name)`:
- `module` is scikit-learn's and none of its parts is in `DENIED_PARTS` (tests, datasets, parallelism, vendored
  code, callback transport, display helpers...);
- `getattr(import_module(module), name)` is a class whose `__module__` is `module` and `__qualname__` is `name`:
  the one spelling pickle writes for it. A re-export (`sklearn.callback._transport.Client`, which is
  `multiprocessing.connection.Client`) or an alias never qualifies;
- every base class is scikit-learn's own or a plain standard one (`ALLOWED_BASES`): a subclass of
  `threading.Thread`, a rich progress display or a scipy operator is left out;
- no scikit-learn class in its MRO defines, in Python, a hook that runs while unpickling or collecting it
  (`HOOKS`) unless that hook was read and is listed in `REVIEWED_HOOKS` (ScoringMonitor's `__setstate__`
  opens a listening socket: it is left out).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

OUTPUT = Path(__file__).with_name("allowlist_generated.py")

DENIED_PARTS = frozenset(
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
        # test helpers: classes that call the callables they are given (CheckingClassifier's check_X...)
        "estimator_checks",
        "_mocking",
        # the callbacks' inter-process transport (sockets, listener threads): never model state
        "_transport",
    }
)
"""Module path parts under which no scikit-learn name is allowed."""

ALLOWED_BASES = frozenset(
    {
        ("builtins", "object"),
        ("builtins", "dict"),
        ("builtins", "tuple"),
        ("builtins", "int"),
        ("abc", "ABC"),
        ("enum", "Enum"),
        ("enum", "Flag"),
        ("enum", "IntFlag"),
        ("enum", "ReprEnum"),
        ("numbers", "Number"),
        ("numbers", "Complex"),
        ("numbers", "Real"),
        ("typing", "Generic"),
        ("typing", "Protocol"),
        ("collections", "Counter"),
    }
)
"""Non-scikit-learn bases a class may have (exception classes are allowed too: constructing one does nothing)."""

HOOKS = ("__setstate__", "__del__", "__getattr__", "__getattribute__", "__missing__", "__set_name__")
"""Methods that run while an object is unpickled, used as a mapping or collected, without the model being run."""

REVIEWED_HOOKS = frozenset(
    {
        ("sklearn.base.BaseEstimator", "__setstate__"),  # warns on a version mismatch, then updates __dict__
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", "__setstate__"),  # casts an array
        ("sklearn.isotonic.IsotonicRegression", "__setstate__"),  # rebuilds its interpolation from its arrays
        ("sklearn.utils._bunch.Bunch", "__setstate__"),  # does nothing
        ("sklearn.utils._bunch.Bunch", "__getattr__"),  # reads its own keys
        ("sklearn.frozen._frozen.FrozenEstimator", "__getattr__"),  # reads its wrapped estimator's attribute
        ("sklearn.utils._metadata_requests.MetadataRequest", "__getattr__"),  # reads its own method requests
        ("sklearn.utils._encode._NaNCounter", "__missing__"),  # looks up NaN among its keys
        ("sklearn.utils._encode._nandict", "__missing__"),  # looks up NaN among its keys
    }
)
"""Python-level hooks that were read: each only stores or reads values it is given."""

SPARSE_FORMATS = ("bsr", "coo", "csc", "csr", "dia", "dok", "lil")


@dataclass(frozen=True)
class Generated:
    """What the allow-list names, by kind, as sorted (module, name) pairs, and the versions it came from."""

    versions: dict[str, str]
    classes: list[tuple[str, str]]
    values: list[tuple[str, str]]
    class_first_arg: list[tuple[str, str]]
    pyx_unpicklers: list[tuple[str, str]]


def _denied(module: str) -> bool:
    return bool(DENIED_PARTS.intersection(module.split(".")))


def sklearn_modules() -> list[ModuleType]:
    """Every importable scikit-learn module outside the denied parts."""
    import sklearn

    names = ["sklearn"] + [m.name for m in pkgutil.walk_packages(sklearn.__path__, "sklearn.") if not _denied(m.name)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated modules warn on import
        return [importlib.import_module(n) for n in names]


def _defined_here(module: ModuleType, name: str, obj: object) -> bool:
    return getattr(obj, "__module__", None) == module.__name__ and getattr(obj, "__qualname__", None) == name


def _base_ok(base: type) -> bool:
    if base.__module__.split(".")[0] == "sklearn":
        return not _denied(base.__module__)
    return (base.__module__, base.__qualname__) in ALLOWED_BASES or issubclass(base, BaseException)


def _unreviewed_hook(cls: type) -> str | None:
    for base in cls.__mro__:
        if base.__module__.split(".")[0] != "sklearn":
            continue
        for hook in HOOKS:
            where = f"{base.__module__}.{base.__qualname__}"
            if inspect.isfunction(base.__dict__.get(hook)) and (where, hook) not in REVIEWED_HOOKS:
                return f"{where}.{hook}"
    return None


def sklearn_classes(modules: list[ModuleType]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The allowed scikit-learn classes, and the left-out ones defined where named, with the reason."""
    allowed: list[tuple[str, str]] = []
    left_out: dict[str, str] = {}
    for module in modules:
        for name, obj in vars(module).items():
            if not (isinstance(obj, type) and _defined_here(module, name, obj)):
                continue
            bad_base = next((b for b in obj.__mro__[1:] if not _base_ok(b)), None)
            hook = _unreviewed_hook(obj)
            if bad_base is not None:
                left_out[f"{module.__name__}.{name}"] = f"base {bad_base.__module__}.{bad_base.__qualname__}"
            elif hook is not None:
                left_out[f"{module.__name__}.{name}"] = f"unreviewed hook {hook}"
            else:
                allowed.append((module.__name__, name))
    return sorted(allowed), left_out


def sklearn_reconstructors(
    modules: list[ModuleType], classes: set[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Cython's reconstructors: `newObj(cls)` (`cls.__new__(cls)`) and `__pyx_unpickle_Foo(cls, checksum, state)`.

    A `__pyx_unpickle_Foo` is allowed only when `Foo` is an allowed class of the same module, and the scanner
    then requires exactly that class as its first argument.
    """
    new_obj: list[tuple[str, str]] = []
    pyx: list[tuple[str, str]] = []
    for module in modules:
        for name in vars(module):
            if name == "newObj":
                new_obj.append((module.__name__, name))
            elif name.startswith("__pyx_unpickle_"):
                cls = (module.__name__, name.removeprefix("__pyx_unpickle_"))
                if cls in classes:
                    pyx.append((module.__name__, name))
    return sorted(new_obj), sorted(pyx)


def numpy_names() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The DType classes of numpy (`numpy.dtypes.Float64DType`...) and its ufuncs (`numpy.log1p`...), as pickled.

    A ufunc only computes on arrays; it is allowed as a value (FunctionTransformer(func=numpy.log1p)), never called
    while unpickling.
    """
    import numpy
    import numpy.dtypes

    dtypes = [
        ("numpy.dtypes", n)
        for n, obj in vars(numpy.dtypes).items()
        if isinstance(obj, type) and issubclass(obj, numpy.dtype) and _defined_here(numpy.dtypes, n, obj)
    ]
    ufuncs = [("numpy", n) for n, obj in vars(numpy).items() if isinstance(obj, numpy.ufunc) and obj.__name__ == n]
    return sorted(dtypes), sorted(ufuncs)


def sklearn_metric_functions() -> list[tuple[str, str]]:
    """The metric functions behind scikit-learn's named scorers (`accuracy_score`, `f1_score`...), as pickled.

    A fitted search (`GridSearchCV(scoring="f1_macro")`) keeps its scorer, which keeps the metric function as a
    value, to call at score time with labels and predictions. Each only computes on arrays. A scorer made from
    any other function (`make_scorer(my_func)`) is still refused.
    """
    from sklearn.metrics import get_scorer, get_scorer_names

    names: set[tuple[str, str]] = set()
    for scorer_name in get_scorer_names():
        func = getattr(get_scorer(scorer_name), "_score_func", None)
        if func is None:
            continue
        module = importlib.import_module(func.__module__)
        if _defined_here(module, func.__qualname__, func):
            names.add((func.__module__, func.__qualname__))
    return sorted(names)


def scipy_sparse_classes() -> list[tuple[str, str]]:
    """The sparse matrix and array classes of scipy where they are defined, and their old spellings.

    Earlier scipy releases wrote `scipy.sparse.csr.csr_matrix`; scipy still loads those through deprecated
    aliases, so each is allowed where it resolves to the very same class.
    """
    import scipy.sparse  # type: ignore[import-untyped]

    names: set[tuple[str, str]] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in SPARSE_FORMATS:
            for kind in ("matrix", "array"):
                cls: type = getattr(scipy.sparse, f"{fmt}_{kind}")
                names.add((cls.__module__, cls.__qualname__))
                old = importlib.import_module(f"scipy.sparse.{fmt}")
                if getattr(old, cls.__qualname__, None) is cls:
                    names.add((old.__name__, cls.__qualname__))
    return sorted(names)


def generate() -> Generated:
    """The allow-list for the installed scikit-learn, numpy and scipy."""
    import numpy
    import scipy
    import sklearn

    modules = sklearn_modules()
    sk_classes, _ = sklearn_classes(modules)
    new_obj, pyx = sklearn_reconstructors(modules, set(sk_classes))
    dtypes, ufuncs = numpy_names()
    return Generated(
        versions={"scikit-learn": sklearn.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__},
        classes=sorted(sk_classes + dtypes + scipy_sparse_classes()),
        values=sorted(ufuncs + sklearn_metric_functions()),
        class_first_arg=new_obj,
        pyx_unpicklers=pyx,
    )


def _pairs(pairs: list[tuple[str, str]]) -> str:
    """One pair a line, split as ruff formats a line longer than 120 characters."""
    lines = []
    for m, n in pairs:
        line = f'        ("{m}", "{n}"),'
        lines.append(line if len(line) <= 120 else f'        (\n            "{m}",\n            "{n}",\n        ),')
    return "".join(line + "\n" for line in lines)


def render(g: Generated) -> str:
    """The source of `allowlist_generated.py` (already in ruff's format)."""
    versions = ", ".join(f"{k} {v}" for k, v in g.versions.items())
    return (
        '"""Generated by `python -m aiprov.scanning.gen_allowlist`: do not edit.\n\n'
        f"Made from {versions}.\n"
        "Every pair is a (module, name) that pickle writes for an object defined exactly there; gen_allowlist says\n"
        'the rule, allowlist.py how the scanner uses it.\n"""\n\n'
        f"VERSIONS = {g.versions!r}\n\n".replace("'", '"')
        + "CLASSES = frozenset(\n    {\n"
        + _pairs(g.classes)
        + "    }\n)\n"
        + '"""Classes a pickle may name, instantiate and give state."""\n\n'
        + "VALUES = frozenset(\n    {\n"
        + _pairs(g.values)
        + "    }\n)\n"
        + '"""Pure functions (ufuncs, metrics of sklearn scorers) a pickle may store as a value, never call."""\n\n'
        + "NEW_OBJ = frozenset(\n    {\n"
        + _pairs(g.class_first_arg)
        + "    }\n)\n"
        + '"""Cython `newObj(cls)` reconstructors: `cls.__new__(cls)`, for an allowed class."""\n\n'
        + "PYX_UNPICKLERS = frozenset(\n    {\n"
        + _pairs(g.pyx_unpicklers)
        + "    }\n)\n"
        + '"""Cython `__pyx_unpickle_Foo` reconstructors; each may only be given `Foo` of its own module."""\n'
    )


def main() -> int:
    OUTPUT.write_text(render(generate()))
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
