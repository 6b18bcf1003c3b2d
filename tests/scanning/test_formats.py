"""Format detection by content, the structural checks of code-free formats, and the allow-list's edges."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scan_corpus

from aiprov.errors import InvalidInput
from aiprov.scanning import FileReport, ScanReport, scan_file, scan_path, scan_stream
from aiprov.scanning.allowlist import Kind, classify, normalize


def scan(data: bytes, name: str = "model.bin") -> FileReport:
    return scan_stream(name, io.BytesIO(data))


def test_format_comes_from_content_not_name() -> None:
    evil = pickle.dumps(scan_corpus.Call(print, "x"))
    assert scan(evil, "config.json").format == "pickle"
    assert scan(evil, "config.json").verdict == "unsafe"
    assert scan(b'{"a": 1}', "model.pkl").format == "json"


def test_safetensors_with_gap_or_overlap_is_unsafe() -> None:
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1],
              "data_offsets": [12, 16]}}  # fmt: skip
    raw = json.dumps(header).encode()
    data = struct.pack("<Q", len(raw)) + raw + b"\x00" * 16
    report = scan(data)
    assert report.format == "safetensors" and report.verdict == "unsafe"
    assert any("gap" in f.detail for f in report.findings)


def test_safetensors_with_extra_bytes_is_unsafe() -> None:
    from safetensors.numpy import save

    assert scan(save({"w": np.zeros(3, dtype="f4")}) + b"PK\x03\x04hidden").verdict == "unsafe"


def test_safetensors_duplicate_keys_are_unsafe() -> None:
    raw = b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "w": {"dtype": "U8", "shape": [1], ' \
          b'"data_offsets": [0, 1]}}'  # fmt: skip
    assert scan(struct.pack("<Q", len(raw)) + raw + b"\x00").verdict == "unsafe"


def test_npy_with_trailing_pickle_is_unsafe() -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(4.0))
    report = scan(buf.getvalue() + pickle.dumps(scan_corpus.Call(print, "x")))
    assert report.verdict == "unsafe" and report.findings[0].reason == "trailing-data"


def test_truncated_npy_is_unsafe() -> None:
    buf = io.BytesIO()
    np.save(buf, np.arange(4.0))
    assert scan(buf.getvalue()[:-3]).verdict == "unsafe"


def test_hdf5_is_unsupported_and_with_a_lambda_layer_unsafe() -> None:
    head = b"\x89HDF\r\n\x1a\n" + b"\x00" * 100
    assert scan(head).verdict == "unsupported"
    config = b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {}}]}}'
    report = scan(head + config + b"\x00" * 10)
    assert report.verdict == "unsafe" and report.findings[0].reason == "keras-lambda"


def test_keras_v3_zip_with_lambda_config_is_unsafe() -> None:
    config = json.dumps({"class_name": "Functional", "config": {"layers": [{"class_name": "Lambda"}]}}).encode()
    data = scan_corpus.zip_of({"config.json": config, "metadata.json": b"{}", "model.weights.h5": b"\x89HDF\r\n\x1a\n"})
    report = scan(data)
    assert report.format == "keras" and report.verdict == "unsafe"


def test_unknown_binary_is_unsupported_never_safe() -> None:
    assert scan(bytes(range(256)) * 4).verdict == "unsupported"


def test_empty_file_is_safe() -> None:
    assert scan(b"").verdict == "safe"


def test_zip_with_comment_or_gap_is_unsafe() -> None:
    data = scan_corpus.torch_zip(scan_corpus.torch_data_pkl())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", b"hello")
        z.comment = b"hidden payload"
    assert scan(buf.getvalue()).verdict == "unsafe"
    assert scan(b"junk" + data).verdict == "unsafe"


def test_zip_member_escaping_the_archive_is_unsafe() -> None:
    assert scan(scan_corpus.zip_of({"../evil.txt": b"x"})).verdict == "unsafe"


def test_torch_storage_referenced_by_the_pickle_is_not_parsed_as_pickle() -> None:
    data = scan_corpus.torch_zip(scan_corpus.torch_data_pkl())
    storage = np.array([640, 1], dtype="<i8").tobytes()  # starts b"\x80\x02": would look like a pickle
    data = data.replace(np.arange(6, dtype="<f4").tobytes()[:16], storage)
    report = scan(data)
    assert report.verdict in ("safe", "unsafe")  # CRC now wrong, so unsafe; never a parse of raw tensor bytes
    assert all("data/0: " not in f.detail or f.reason == "bad-crc" for f in report.findings)


def test_joblib_array_started_inside_a_frame_is_unsafe() -> None:
    data = bytearray(scan_corpus._joblib({"a": np.arange(8.0)}))
    # Lengthen the first frame by 2 so it covers the array's padding byte: joblib and the frame then disagree.
    size = struct.unpack_from("<Q", data, 3)[0]
    struct.pack_into("<Q", data, 3, size + 2)
    assert scan(bytes(data)).verdict == "unsafe"


def test_persistent_id_outside_torch_is_unsafe() -> None:
    assert scan(b"\x80\x02" + scan_corpus.u("storage") + b"Q.").verdict == "unsafe"


def test_scan_path_reports_every_file_and_the_worst_verdict(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b"{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.pkl").write_bytes(pickle.dumps({"a": 1}))
    assert scan_path(tmp_path).verdict == "safe"
    (tmp_path / "weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 10)
    assert scan_path(tmp_path).verdict == "unsupported"
    (tmp_path / "evil").write_bytes(scan_corpus.call0("os", "system", "x"))
    report = scan_path(tmp_path)
    assert report.verdict == "unsafe"
    assert [f.path for f in report.files] == ["config.json", "evil", "sub/model.pkl", "weights.h5"]
    shape = report.to_json()
    assert set(shape) == {"verdict", "files"}
    assert set(shape["files"][1]) == {"path", "format", "verdict", "findings"}
    assert set(shape["files"][1]["findings"][0]) == {"reason", "detail"}


def test_scan_path_refuses_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        scan_path(tmp_path / "nope")


def test_scan_report_overall_verdict_order() -> None:
    def f(v: str) -> FileReport:
        return FileReport("p", "x", v, ())  # type: ignore[arg-type]

    assert ScanReport.of((f("safe"), f("unsupported"))).verdict == "unsupported"
    assert ScanReport.of((f("unsupported"), f("unsafe"), f("safe"))).verdict == "unsafe"
    assert ScanReport.of(()).verdict == "safe"


def test_scan_file_and_scan_stream_agree(tmp_path: Path) -> None:
    data = scan_corpus._joblib({"a": np.arange(1000.0)})
    (tmp_path / "m").write_bytes(data)
    assert scan_file(tmp_path / "m", "m") == scan_stream("m", io.BytesIO(data))


def test_allowlist_takes_sklearn_classes_but_not_functions() -> None:
    assert classify("sklearn.tree._classes", "DecisionTreeClassifier") is Kind.CLASS
    assert classify("sklearn.utils.parallel", "delayed") is None
    assert classify("sklearn.utils.parallel", "Parallel") is None
    assert classify("sklearn.datasets._openml", "fetch_openml") is None
    assert classify("sklearn.utils._testing", "TempMemmap") is None
    assert classify("sklearn.base", "os.system") is None
    assert classify("sklearnx", "Foo") is None
    assert classify("numpy._core.multiarray", "_reconstruct") is Kind.FUNCTION
    assert classify("builtins", "getattr") is None
    assert classify("builtins", "Ellipsis") is Kind.VALUE


def test_python2_names_are_checked_after_renaming() -> None:
    assert normalize("__builtin__", "eval") == ("builtins", "eval")
    assert normalize("copy_reg", "_reconstructor") == ("copyreg", "_reconstructor")


def test_calling_an_allowed_value_or_a_computed_object_is_unsafe() -> None:
    assert scan(b"\x80\x02" + scan_corpus.g("builtins", "Ellipsis") + b")R.").verdict == "unsafe"
    computed = b"\x80\x02" + scan_corpus.g("builtins", "set") + b")R)R."  # set()() : call of a result
    assert scan(computed).findings[0].reason == "computed-call"


def test_codecs_encode_only_with_latin1() -> None:
    ok = b"\x80\x02" + scan_corpus.g("_codecs", "encode") + scan_corpus.u("x") + scan_corpus.u("latin1") + b"\x86R."
    bad = b"\x80\x02" + scan_corpus.g("_codecs", "encode") + scan_corpus.u("x") + scan_corpus.u("zlib") + b"\x86R."
    assert scan(ok).verdict == "safe"
    assert scan(bad).verdict == "unsafe"


class _Pipe(io.RawIOBase):
    """A stream that cannot seek, like an upload body."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        chunk = self._data.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_scan_stream_reads_unseekable_and_mid_stream_input() -> None:
    data = scan_corpus.torch_zip(scan_corpus.torch_data_pkl())
    assert scan_stream("m.pt", _Pipe(data)).verdict == "safe"  # type: ignore[arg-type]
    offset = io.BytesIO(b"HEADER" + data)
    offset.seek(6)
    assert scan_stream("m.pt", offset, size=len(data)).verdict == "safe"
    with pytest.raises(ValueError):
        scan_stream("m.pt", io.BytesIO(data), size=1)
