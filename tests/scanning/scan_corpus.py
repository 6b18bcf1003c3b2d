"""The scanner's test corpus, built in code: malicious pickle-family files and real benign model files.

Payloads would only create a marker file; nothing here ever loads what it builds (pickling an object whose
__reduce__ names os.system writes the name, it does not call it).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import subprocess
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np


class Call:
    """Pickles as `func(*args)`: the classic payload shape. Never called here."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __call__(self, *a: Any) -> Any:  # only so that pickle accepts it as the func of an outer Call
        raise AssertionError("a test payload was executed")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


# hand-written opcodes -------------------------------------------------------------------------------


def g(module: str, name: str) -> bytes:
    """GLOBAL opcode."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def u(text: str) -> bytes:
    """BINUNICODE opcode."""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def call0(module: str, name: str, *args: str) -> bytes:
    """A protocol 0 pickle calling module.name(*args) with GLOBAL and REDUCE."""
    return g(module, name) + b"(" + b"".join(b"V" + a.encode() + b"\n" for a in args) + b"tR."


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive of `members` (name -> bytes), written by Python's zipfile."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def nested_zip_bomb() -> bytes:
    """8 zips of 8 zips of 8 zips of 4 MiB of zeros, deflated: 2 GiB inflated, under 200 KB as stored."""
    layer = zip_of({"zeros.bin": bytes(4 << 20)}, zipfile.ZIP_DEFLATED)
    for _ in range(3):
        layer = zip_of({f"{i}.zip": layer for i in range(8)}, zipfile.ZIP_DEFLATED)
    return layer


def torch_data_pkl(extra: bytes = b"") -> bytes:
    """`archive/data.pkl` exactly as torch.save writes a state dict {"weight": 2x3 float tensor} (protocol 2)."""
    storage = b"(" + u("storage") + g("torch", "FloatStorage") + u("0") + u("cpu") + b"K\x06tQ"
    tensor = (
        g("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + storage
        + b"K\x00"
        + b"K\x02K\x03\x86"
        + b"K\x03K\x01\x86"
        + b"\x89"
        + g("collections", "OrderedDict")
        + b")R"
        + b"tR"
    )
    return b"\x80\x02" + g("collections", "OrderedDict") + b")R(" + u("weight") + tensor + extra + b"u."


def torch_zip(data_pkl: bytes, extra: dict[str, bytes] | None = None, prefix: str = "archive") -> bytes:
    """A PyTorch zip laid out as torch.save does it."""
    return zip_of(
        {
            f"{prefix}/data.pkl": data_pkl,
            f"{prefix}/byteorder": b"little",
            f"{prefix}/data/0": np.arange(6, dtype="<f4").tobytes(),
            f"{prefix}/version": b"3\n",
            f"{prefix}/.data/serialization_id": b"1234567890123456789012345678901234567890",
            **(extra or {}),
        }
    )


def _joblib(value: Any, compress: Any = 0) -> bytes:
    buf = io.BytesIO()
    joblib.dump(value, buf, compress=compress)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# the malicious corpus -------------------------------------------------------------------------------


def malicious(marker: str, workdir: str) -> dict[str, bytes]:
    """Name -> bytes; each would (only) create `marker` if loaded. `workdir` holds files nested loaders name."""
    touch = f"touch {marker}"
    system = Call(os.system, touch)
    inner = pickle.dumps(system)
    nested_joblib = os.path.join(workdir, "inner.joblib")
    nested_npy = os.path.join(workdir, "inner.npy")
    c: dict[str, bytes] = {}
    for proto in range(6):
        c[f"os_system_protocol_{proto}"] = pickle.dumps(system, protocol=proto)
    c["posix_system"] = call0("posix", "system", touch)
    c["nt_system"] = call0("nt", "system", touch)
    c["subprocess_popen"] = pickle.dumps(Call(subprocess.Popen, ["touch", marker]))
    c["subprocess_check_output"] = pickle.dumps(Call(subprocess.check_output, ["touch", marker]))
    c["builtins_exec"] = pickle.dumps(Call(exec, f"open({marker!r}, 'w')"))
    c["builtins_eval"] = pickle.dumps(Call(eval, f"open({marker!r}, 'w')"))
    c["builtins_getattr_import_chain"] = pickle.dumps(Call(Call(getattr, Call(__import__, "os"), "system"), touch))
    c["builtins_compile"] = pickle.dumps(Call(exec, Call(compile, f"open({marker!r}, 'w')", "x", "exec")))
    c["builtins_open"] = pickle.dumps(Call(open, marker, "w"))
    c["python2_builtin_eval"] = call0("__builtin__", "eval", f"open({marker!r}, 'w')")
    c["shutil_rmtree"] = call0("shutil", "rmtree", workdir)
    c["pty_spawn"] = call0("pty", "spawn", "touch")
    c["code_interactive_interpreter"] = pickle.dumps(
        Call(Call(getattr, Call(_global("code", "InteractiveInterpreter")), "runsource"), f"open({marker!r}, 'w')")
    )
    c["runpy_run_code"] = call0("runpy", "_run_code", f"open({marker!r}, 'w')")
    c["webbrowser_open"] = call0("webbrowser", "open", f"file://{marker}")
    c["socket_create_connection"] = pickle.dumps(Call(_global("socket", "create_connection"), ("127.0.0.1", 9)))
    c["ctypes_cdll"] = call0("ctypes", "CDLL", "libc.so.6")
    c["importlib_import_module"] = pickle.dumps(
        Call(Call(getattr, Call(_global("importlib", "import_module"), "os"), "system"), touch)
    )
    c["operator_methodcaller"] = pickle.dumps(
        Call(Call(_global("operator", "methodcaller"), "system", touch), Call(__import__, "os"))
    )
    c["operator_attrgetter"] = pickle.dumps(
        Call(Call(Call(_global("operator", "attrgetter"), "system"), Call(__import__, "os")), touch)
    )
    c["functools_partial"] = pickle.dumps(Call(Call(_global("functools", "partial"), os.system, touch)))
    c["nested_pickle_loads"] = pickle.dumps(Call(pickle.loads, inner))
    c["nested_joblib_load"] = pickle.dumps(Call(joblib.load, nested_joblib))
    c["nested_numpy_load"] = pickle.dumps(Call(np.load, nested_npy, None, True))
    # STACK_GLOBAL whose strings come from the memo: MEMOIZE/BINPUT then BINGET/LONG_BINGET.
    c["stack_global_via_memoize"] = (
        b"\x80\x04\x8c\x02os\x94\x8c\x06system\x940" + b"0" + b"h\x00h\x01\x93" + u(touch) + b"\x85R."
    )
    c["stack_global_via_long_binget"] = (
        b"\x80\x04\x8c\x02osr\x07\x00\x00\x000\x8c\x06systemq\x090"
        + b"j\x07\x00\x00\x00h\x09\x93"
        + u(touch)
        + b"\x85R."
    )
    c["stack_global_via_text_put_get"] = (
        b"\x80\x04" + u("os") + b"p5\n0" + u("system") + b"p6\n0g5\ng6\n\x93(V" + (touch.encode() + b"\ntR.")
    )
    c["inst_protocol_0"] = b"(V" + touch.encode() + b"\nios\nsystem\n."
    c["obj_protocol_1"] = b"(" + g("os", "system") + u(touch) + b"o."
    c["newobj_popen"] = b"\x80\x02" + g("subprocess", "Popen") + u("touch") + b"\x85\x81."
    c["dotted_name_through_allowed_module"] = (
        b"\x80\x04" + u("sklearn.base") + u("os.system") + b"\x93" + u(touch) + (b"\x85R.")
    )
    c["sklearn_function_not_a_class"] = call0("sklearn.datasets", "fetch_openml", "x")
    c["monkey_patch_allowed_class"] = (
        b"\x80\x02" + g("sklearn.base", "BaseEstimator") + b"N}" + u("__repr__") + g("builtins", "set") + b"s\x86b."
    )
    c["reconstructor_with_disallowed_class"] = (
        b"\x80\x02" + g("copyreg", "_reconstructor") + g("os", "system") + g("builtins", "object") + b"N\x87R."
    )
    # joblib: a payload after numpy array data (joblib.dump writes the array bytes before pickling the next item)
    after_array = {"weights": np.arange(1000, dtype="f8"), "z": system}
    c["joblib_payload_after_array"] = _joblib(after_array)
    for method in ("zlib", "gzip", "bz2", "lzma", "xz"):
        c[f"joblib_payload_after_array_{method}"] = _joblib(after_array, (method, 3))
    c["joblib_object_array_payload"] = _joblib({"a": np.arange(10), "o": np.array([system, 1], dtype=object)})
    c["joblib_truncated"] = _joblib(after_array)[:-40]
    # PyTorch zips: payload in data.pkl, under an unusual member name, under another folder name
    c["torch_zip_payload_in_data_pkl"] = torch_zip(torch_data_pkl(u("evil") + call0("os", "system", touch)[:-1]))
    c["torch_zip_payload_under_any_name"] = torch_zip(torch_data_pkl(), {"archive/data/weights.bin": inner})
    c["torch_zip_payload_other_folder"] = torch_zip(pickle.dumps(system, protocol=2), prefix="model")
    c["torch_zip_bad_crc"] = _flip_stored_member(torch_zip(torch_data_pkl()), b"little")
    c["torch_zip_with_code"] = torch_zip(torch_data_pkl(), {"archive/code/__torch__/m.py": b"import os\n"})
    # numpy object arrays
    evil_array = np.array([system, 2], dtype=object)
    c["npy_object_array_payload"] = _npy(evil_array)
    c["npz_object_array_payload"] = _npz(ok=np.arange(3), bad=evil_array)
    # polyglots, truncated and corrupt files
    benign = pickle.dumps({"a": 1}, protocol=4)
    c["polyglot_pickle_then_zip"] = benign + zip_of({"x.txt": b"hello"})
    c["polyglot_pickle_then_pickle"] = benign + inner
    c["zip_with_pickle_prefix"] = _prefix_zip(inner, torch_zip(torch_data_pkl()))
    c["truncated_payload_without_stop"] = inner[:-1]
    c["gzip_plain_pickle_payload"] = gzip.compress(inner)
    c["bz2_plain_pickle_payload"] = bz2.compress(inner)
    c["lzma_plain_pickle_payload"] = lzma.compress(inner, format=lzma.FORMAT_ALONE)
    c["zlib_plain_pickle_payload"] = zlib.compress(inner)
    # a complete pickle whose extension code would name a global through copyreg's registry
    c["extension_code"] = b"\x80\x02\x82\x01" + u(touch) + b"\x85R."
    return c


def broken() -> dict[str, bytes]:
    """Files that claim to be pickles and that every unpickler rejects before importing anything.

    Loading one runs nothing, so it is not unsafe; it cannot be loaded either, so it is not safe: `unsupported`.
    """
    return {
        "truncated_in_the_middle": pickle.dumps({"a": list(range(100))}, protocol=4)[:50],
        "corrupt_unknown_opcode": b"\x80\x04\xff\x00\x00.",
        "corrupt_stack_underflow": b"\x80\x02R.",
        "zlib_corrupt": zlib.compress(pickle.dumps({"a": 1}, protocol=4))[:-6] + b"\x00" * 6,
    }


def _global(module: str, name: str) -> Any:
    """The real object, only so pickle can write its name (pickle checks the name resolves)."""
    mod = __import__(module, fromlist=[name])
    return getattr(mod, name)


def _flip_stored_member(archive: bytes, content: bytes) -> bytes:
    i = archive.index(content)
    return archive[:i] + bytes([content[0] ^ 0x20]) + archive[i + 1 :]


def _prefix_zip(prefix: bytes, archive: bytes) -> bytes:
    """A zip with data in front (zipfile still opens it: it corrects the offsets)."""
    return prefix + archive


# the benign corpus ----------------------------------------------------------------------------------


def sklearn_models() -> dict[str, Any]:
    """Real fitted scikit-learn models (small data, so the suite stays fast)."""
    import warnings

    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    xr, yr = load_diabetes(return_X_y=True)
    models: dict[str, Any] = {
        "decision_tree": DecisionTreeClassifier(random_state=0).fit(x, y),
        "logistic_regression": LogisticRegression(max_iter=1000).fit(x, y),
        "linear_regression": LinearRegression().fit(xr, yr),
        "random_forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y),
        "pipeline_scaler_logreg": Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]).fit(x, y),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=5, random_state=0).fit(x, y),
        "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=5).fit(x, y),
        "knn_kd_tree": KNeighborsClassifier(algorithm="kd_tree").fit(x, y),
        "knn_ball_tree": KNeighborsClassifier(algorithm="ball_tree").fit(x, y),
        "forest_with_random_state": RandomForestClassifier(n_estimators=2, random_state=np.random.RandomState(0)).fit(
            x, y
        ),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models["svc"] = SVC(probability=True, random_state=0).fit(x, y)
    return models


def benign(models: dict[str, Any]) -> dict[str, bytes]:
    """Name -> bytes of files that must all be `safe`."""
    c: dict[str, bytes] = {}
    for name, model in models.items():
        for proto in (2, 3, 4, 5):
            c[f"{name}_pickle_protocol_{proto}"] = pickle.dumps(model, protocol=proto)
        c[f"{name}_joblib"] = _joblib(model)
        c[f"{name}_joblib_zlib"] = _joblib(model, 3)
    for method in ("gzip", "bz2", "lzma", "xz"):
        c[f"random_forest_joblib_{method}"] = _joblib(models["random_forest"], (method, 3))
    for proto in range(6):
        c[f"plain_dict_protocol_{proto}"] = pickle.dumps(
            {"a": [1, 2.5, "x", None, True], "b": (b"bytes", {3}, frozenset({4})), "c": OrderedDict(k=1)},
            protocol=proto,
        )
    c["plain_list_pickle"] = pickle.dumps([1, 2, [3, {"x": b"\x00" * 10_000}]], protocol=5)
    c["numpy_arrays_pickle"] = pickle.dumps({"f": np.arange(5.0), "s": np.float64(1.5), "i": np.int64(3)}, 4)
    c["joblib_numpy_arrays"] = _joblib({"a": np.arange(100.0), "b": np.ones((3, 4), dtype="i4", order="F")})
    c["npy_float"] = _npy(np.random.default_rng(0).random((4, 5)))
    c["npy_int_fortran"] = _npy(np.asfortranarray(np.arange(12, dtype="<i2").reshape(3, 4)))
    c["npy_structured"] = _npy(np.zeros(3, dtype=[("a", "<f8"), ("b", "<i4", (2,))]))
    c["npy_strings"] = _npy(np.array(["ab", "cde"]))
    c["npz_numeric"] = _npz(w=np.arange(10.0), b=np.zeros((2, 2), dtype="u1"))
    c["torch_state_dict_zip"] = torch_zip(torch_data_pkl())
    c["safetensors"] = _safetensors()
    c["onnx_from_sklearn"] = _onnx(models["logistic_regression"])
    for name in ("logistic_regression", "random_forest", "pipeline_scaler_logreg"):
        c[f"skops_{name}"] = _skops(models[name])
    c["json_config"] = b'{"n_estimators": 100, "labels": ["a", "b"]}'
    c["text_readme"] = "A model card. Ünïcode is fine.\n".encode()
    return c


def _safetensors() -> bytes:
    from safetensors.numpy import save

    return save({"w": np.arange(6, dtype="f4").reshape(2, 3), "b": np.zeros(3, dtype="f8")}, {"fmt": "np"})


def _onnx(model: Any) -> bytes:
    from skl2onnx import to_onnx

    return to_onnx(model, np.zeros((1, 4), dtype=np.float32), target_opset=17).SerializeToString()  # type: ignore[no-any-return]


def _skops(model: Any) -> bytes:
    import skops.io as sio

    return sio.dumps(model)  # type: ignore[no-any-return]


MaliciousFactory = Callable[[str, str], dict[str, bytes]]
