"""Detection is precise: a file is a pickle only if a loader would unpickle it, ONNX only if it is a ModelProto.

Text that starts with an opcode byte, random binary and random text are never unsafe; the crafted files that a
loader would run still are.
"""

from __future__ import annotations

import gzip
import io
import random
import zlib

import pytest
from scan_corpus import benign, sklearn_models

from aiprov.scanning import scan_stream

TEXTS = {
    "modeling.py": b"import torch\nfrom torch import nn\n\nclass Model(nn.Module):\n    pass\n",
    "configuration.py": b"class Config:\n    hidden_size = 768\n",
    "tokenization.py": b"from transformers import PreTrainedTokenizer\n",
    "convert.py": b'if __name__ == "__main__":\n    main()\n',
    "import_os.py": b"import os\nos.system('echo hi')\n",
    "calib.csv": b"col1,col2,col3\n0.1,0.2,0.3\n",
    "cat.csv": b"cat,dog\n1,2\n",
    "labels.txt": b"label one\nlabel two\n",
    "notes.txt": b"(draft) see README\n",
    "version.txt": b"Version: 1.2\n",
    "math.txt": b"x^2 + y^2 = r^2\n",
    "vocab.txt": b"[PAD]\n[UNK]\n[CLS]\nthe\n",
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_text_that_starts_with_an_opcode_byte_is_text(name: str) -> None:
    report = scan_stream(name, io.BytesIO(TEXTS[name]))
    assert (report.verdict, report.format) == ("safe", "text"), report


@pytest.mark.parametrize(
    "data",
    [
        b"cos\nsystem\n(S'echo hi'\ntR.",  # protocol 0 GLOBAL with importable names: a real pickle
        b"(S'echo hi'\nios\nsystem\n.",  # INST
        b"cmath\nsqrt\n(I4\ntR.",  # importable but not allowed
        gzip.compress(b"cos\nsystem\n(S'echo hi'\ntR."),  # joblib unpickles any protocol after decompressing
        zlib.compress(b"cos\nsystem\n(S'echo hi'\ntR."),
    ],
    ids=["global", "inst", "not-allowed", "gzip-protocol-0", "zlib-protocol-0"],
)
def test_a_pickle_of_importable_names_stays_unsafe(data: bytes) -> None:
    report = scan_stream("model.pkl", io.BytesIO(data))
    assert report.verdict == "unsafe", report


def test_a_stream_that_imports_then_fails_is_unsafe() -> None:
    report = scan_stream("model.pkl", io.BytesIO(b"cos\nsystem\n(S'x'\ntR\xff"))
    assert report.verdict == "unsafe" and any(f.reason == "parse-error" for f in report.findings), report


def test_a_name_that_cannot_be_imported_ends_the_load_before_anything_runs() -> None:
    text = b"import os\nimport sys\n"  # INST module "mport os", name "import sys"
    assert scan_stream("m.py", io.BytesIO(text)).format == "text"
    # The same failure after an importable global is a broken pickle: the unpickler has imported by then.
    after_import = b"cos\nsystem\n" + text
    assert scan_stream("m.pkl", io.BytesIO(after_import)).verdict == "unsafe"


def test_a_pickle_with_proto_that_fails_before_importing_is_unsupported_never_safe() -> None:
    for data in (b"\x80\x02R.", b"\x80\x04\x95\x10\x00\x00", b"\x80\x03" + bytes([0xFF]) + b"cos\nsystem\n."):
        report = scan_stream("m.pkl", io.BytesIO(data))
        assert (report.verdict, report.format) == ("unsupported", "pickle"), report
        assert report.findings[0].reason == "broken-pickle", report


def test_a_pickle_with_proto_that_imports_then_fails_is_unsafe() -> None:
    report = scan_stream("m.pkl", io.BytesIO(b"\x80\x02cos\nsystem\n\xff"))
    assert report.verdict == "unsafe", report


def _onnx_fields() -> dict[str, bytes]:
    models = sklearn_models()
    return {"onnx": benign(models)["onnx_from_sklearn"]}


def test_onnx_needs_a_structurally_valid_model_proto() -> None:
    model = _onnx_fields()["onnx"]
    assert scan_stream("m.onnx", io.BytesIO(model)).format == "onnx"
    for broken in (model[: len(model) // 2], model + b"\x00", b"\x08\x07" + bytes(64), b"\x08\x07\x3a\x00"):
        report = scan_stream("m.onnx", io.BytesIO(broken))
        assert (report.verdict, report.format) == ("unsupported", "unknown"), report


def test_random_binary_is_never_unsafe() -> None:
    rng = random.Random(20261202)
    unsafe = []
    for i in range(10_000):
        data = rng.randbytes(rng.randint(1, 4096))
        report = scan_stream("weights.bin", io.BytesIO(data))
        if report.verdict == "unsafe":
            unsafe.append((i, report))
    assert unsafe == []


def test_random_binary_headed_by_proto_is_a_broken_pickle_never_unsafe_nor_safe() -> None:
    # One random file in about 11,000 starts with PROTO and a known protocol (0x80, 0..5): it claims to be a
    # pickle, and is a broken one that every unpickler rejects before importing anything.
    rng = random.Random(5)
    verdicts = set()
    for _ in range(2_000):
        data = b"\x80" + bytes([rng.randint(0, 5)]) + rng.randbytes(rng.randint(0, 4096))
        report = scan_stream("weights.bin", io.BytesIO(data))
        verdicts.add((report.verdict, report.format))
    assert verdicts == {("unsupported", "pickle")}


def test_a_random_file_headed_like_a_pickle_is_a_broken_pickle_not_safe() -> None:
    data = b"\x80\x03" + random.Random(1).randbytes(500)
    report = scan_stream("weights.bin", io.BytesIO(data))
    assert (report.verdict, report.format) == ("unsupported", "pickle"), report


def test_random_text_is_never_unsafe() -> None:
    rng = random.Random(7)
    words = ["import", "class", "from", "if", "col1", "the", "model", "x", "=", "(", ")", ":", ",", "0.5", "ä", "日本"]
    alphabet = [chr(c) for c in range(32, 127)] + ["é", "ß", "€", "\t"]
    verdicts = {}
    for _ in range(10_000):
        lines = []
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.5:
                lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(2, 10))))
            else:
                lines.append("".join(rng.choice(alphabet) for _ in range(rng.randint(2, 60))))
        report = scan_stream("notes.txt", io.BytesIO("\n".join(lines).encode()))
        verdicts[report.verdict] = verdicts.get(report.verdict, 0) + 1
        assert report.verdict != "unsafe", (lines, report)
    assert verdicts == {"safe": 10_000}
