"""The acceptance corpus: every malicious pickle-family file is unsafe, every real benign model file is safe."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import scan_corpus

from aiprov.scanning import scan_file, scan_stream

MALICIOUS = sorted(scan_corpus.malicious("/nonexistent/marker", "/nonexistent"))
BENIGN = scan_corpus.benign(scan_corpus.sklearn_models())


def test_corpus_is_large_and_varied() -> None:
    assert len(MALICIOUS) >= 30
    assert len(BENIGN) >= 30


@pytest.mark.parametrize("name", MALICIOUS)
def test_malicious_file_is_unsafe_and_never_runs(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = scan_corpus.malicious(str(marker), str(tmp_path))[name]
    path = tmp_path / "model.bin"  # the name says nothing: format comes from content
    path.write_bytes(data)
    for report in (scan_file(path), scan_stream("model.bin", io.BytesIO(data))):
        assert report.verdict == "unsafe", report
        assert report.findings and all(f.reason and f.detail for f in report.findings)
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(scan_corpus.broken()))
def test_broken_pickle_is_unsupported_never_safe(name: str, tmp_path: Path) -> None:
    data = scan_corpus.broken()[name]
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    for report in (scan_file(path), scan_stream("model.bin", io.BytesIO(data))):
        assert report.verdict == "unsupported", report


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_file_is_safe(name: str, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(BENIGN[name])
    for report in (scan_file(path), scan_stream(name, io.BytesIO(BENIGN[name]))):
        assert report.verdict == "safe", report
        assert report.findings == ()


def test_benign_corpus_covers_every_format() -> None:
    formats = set()
    for key, data in BENIGN.items():
        formats.add(scan_stream(key, io.BytesIO(data)).format)
    expected = {"pickle", "joblib", "joblib+zlib", "joblib+gzip", "joblib+bz2", "joblib+lzma", "joblib+xz"}
    expected |= {"npy", "npz", "pytorch", "safetensors", "onnx", "skops", "json", "text"}
    assert expected <= formats


def test_joblib_payload_after_array_is_rejected_with_its_name() -> None:
    data = scan_corpus.malicious("/m", "/w")["joblib_payload_after_array"]
    report = scan_stream("m.joblib", io.BytesIO(data))
    assert report.format == "joblib"
    assert any("posix.system" in f.detail for f in report.findings)


def test_findings_name_the_nested_unpickler() -> None:
    report = scan_stream("m", io.BytesIO(scan_corpus.malicious("/m", "/w")["nested_pickle_loads"]))
    assert [f.reason for f in report.findings] == ["nested-unpickler"]
    assert "pickle.loads" in report.findings[0].detail


def test_allowed_function_kept_as_data_is_unsafe() -> None:
    """A reconstructor is safe only as the callable it is named for; stored as `func` it would run at predict time."""
    import copyreg
    import pickle

    from sklearn.preprocessing import FunctionTransformer

    from aiprov.scanning import scan_stream

    for proto in (2, 4, 5):
        data = pickle.dumps(FunctionTransformer(func=copyreg._reconstructor), protocol=proto)
        report = scan_stream("ft.pkl", io.BytesIO(data))
        assert report.verdict == "unsafe", proto
        assert any(f.reason == "function-as-value" and "copyreg._reconstructor" in f.detail for f in report.findings)
