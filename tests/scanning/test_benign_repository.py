"""Realistic model repositories push with no refusal; git metadata never enters a version or a pulled folder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from scan_corpus import benign, sklearn_models
from tests.conftest import MakeModel

from aiprov.config import Container
from aiprov.core.digest import Digest
from aiprov.core.names import ModelName
from aiprov.errors import InvalidInput, NotFound
from aiprov.services.registry import PushRequest, PushResult


def _onnx_with_external_data(tmp_path: Path) -> dict[str, bytes]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 64])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(tmp_path / "model.onnx"), save_as_external_data=True, location="model.onnx.data")
    return {name: (tmp_path / name).read_bytes() for name in ("model.onnx", "model.onnx.data")}


def hugging_face_repository(tmp_path: Path) -> dict[str, bytes]:
    """The files of a Hugging Face style model folder, each as the library that owns the format writes it."""
    corpus = benign(sklearn_models())
    index = {"metadata": {"total_size": len(corpus["safetensors"])}, "weight_map": {"w": "model.safetensors"}}
    return {
        "README.md": b"---\nlicense: mit\ntags:\n- text-classification\n---\n# A model\n\nIt classifies.\n",
        "config.json": json.dumps({"architectures": ["BertModel"], "hidden_size": 64}).encode(),
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "WordPiece", "vocab": {"a": 0}}}).encode(),
        "tokenizer_config.json": b'{"do_lower_case": true}',
        "vocab.txt": b"[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\nof\n",
        "merges.txt": "#version: 0.2\nĠ t\nĠ a\nh e\n".encode(),
        "modeling_custom.py": b"import torch\nfrom torch import nn\n\n\nclass Custom(nn.Module):\n    pass\n",
        "configuration_custom.py": b"class CustomConfig:\n    model_type = 'custom'\n",
        "tokenization_custom.py": b"from transformers import PreTrainedTokenizer\n",
        "convert.py": b'if __name__ == "__main__":\n    print("convert")\n',
        "calib.csv": b"col1,col2,col3\n0.1,0.2,0.3\n0.4,0.5,0.6\n",
        "eval/cat_dog.csv": b"cat,dog\n1,0\n",
        "model.safetensors": corpus["safetensors"],
        "model.safetensors.index.json": json.dumps(index).encode(),
        **{f"onnx/{k}": v for k, v in _onnx_with_external_data(tmp_path).items()},
        "pytorch_model.bin": corpus["torch_state_dict_zip"],
        "sklearn/model.skops": corpus["skops_random_forest"],
        "sklearn/model.joblib": corpus["random_forest_joblib"],
        "sklearn/model.joblib.gz": corpus["random_forest_joblib_gzip"],
        "arrays/mean.npy": corpus["npy_float"],
        "arrays/stats.npz": corpus["npz_numeric"],
    }


def test_a_hugging_face_style_repository_pushes_with_no_refusal(
    hub: Container, make_model: MakeModel, tmp_path: Path
) -> None:
    files = hugging_face_repository(tmp_path)
    root = make_model({**files, ".gitattributes": b"*.bin filter=lfs\n"})
    result = hub.registry.push(root, PushRequest("alice/bert-like"))
    by_path = {f.path: f for f in result.scan.files}
    assert sorted(by_path) == sorted(files)  # .gitattributes ignored at the top, as model-signing does
    assert [p for p, f in by_path.items() if f.verdict == "unsafe"] == []
    # Only the ONNX external data (raw floats) is beyond checking here; everything else is proven safe.
    assert [p for p, f in by_path.items() if f.verdict != "safe"] == ["onnx/model.onnx.data"]
    assert by_path["modeling_custom.py"].format == "text" and by_path["calib.csv"].format == "text"
    assert by_path["onnx/model.onnx"].format == "onnx"


def _committed(hub: Container, files: dict[str, bytes]) -> PushResult:
    from aiprov.core.manifest import Manifest, ManifestEntry

    entries = []
    for path, data in files.items():
        writer = hub.blobs.writer()
        writer.write(memoryview(data))
        writer.commit(expected=Digest.of(data))
        entries.append(ManifestEntry(path, len(data), Digest.of(data)))
    return hub.registry.commit(Manifest.build(entries), PushRequest("mallory/smuggler"))


@pytest.mark.parametrize(
    "path", [".git/evil.pkl", ".gitattributes", ".GIT/config", "sub/.git/hooks/post-checkout", ".github/x.yml"]
)
def test_a_committed_manifest_with_git_metadata_is_refused(hub: Container, path: str) -> None:
    with pytest.raises(InvalidInput, match="git metadata"):
        _committed(hub, {"model.json": b"{}", path: b"cos\nsystem\n(S'echo'\ntR."})
    with pytest.raises(NotFound):  # nothing registered, nothing flagged: the manifest itself is invalid
        hub.registry.show("mallory/smuggler")
    assert hub.registry.blob_in_use(Digest.of(b"{}")) is False


def test_other_dot_git_names_are_files_and_are_scanned(hub: Container) -> None:
    from aiprov.errors import UnsafeModelError

    with pytest.raises(UnsafeModelError, match=r"sub/\.gitignore"):
        _committed(hub, {"model.json": b"{}", "sub/.gitignore": b"cos\nsystem\n(S'echo'\ntR."})
    result = _committed(hub, {"model.json": b"{}", "sub/.gitkeep": b"", "data/.gitignore": b"*.tmp\n"})
    assert {f.path for f in result.scan.files} == {"model.json", "sub/.gitkeep", "data/.gitignore"}


def test_local_push_skips_top_level_git_files_and_refuses_a_deeper_git_folder(
    hub: Container, make_model: MakeModel
) -> None:
    root = make_model({"m.json": b"{}", ".git/HEAD": b"ref: main\n", ".gitignore": b"*.tmp\n"})
    result = hub.registry.push(root, PushRequest("alice/clean"))
    assert [e.path for e in result.version.manifest.entries] == ["m.json"]
    nested = make_model({"m.json": b"{}", "vendor/lib/.git/config": b"[core]\n\tfsmonitor = evil\n"})
    with pytest.raises(InvalidInput, match=r"vendor/lib/\.git/config"):
        hub.registry.push(nested, PushRequest("alice/nested"))


def test_pull_never_writes_git_metadata_of_a_version_registered_before_the_rule(
    hub: Container, make_model: MakeModel, tmp_path: Path
) -> None:
    from aiprov.core.manifest import Manifest, ManifestEntry

    result = hub.registry.push(make_model({"m.json": b"{}"}), PushRequest("alice/old"))
    # An old version whose manifest holds `.git/config`, as the HTTP commit used to register them.
    hook = b"[core]\n\tfsmonitor = touch pwned\n"
    writer = hub.blobs.writer()
    writer.write(memoryview(hook))
    writer.commit(expected=Digest.of(hook))
    smuggled = Manifest.build(
        [*result.version.manifest.entries, ManifestEntry(".git/config", len(hook), Digest.of(hook))]
    )
    with hub.db.unit(write=True) as u:
        model = u.require_model(ModelName.parse(result.version.full_name))
        u.add_version(model, smuggled, "alice", result.version.lineage, hub.clock(), False, None)
    dest = tmp_path / "pulled"
    with pytest.raises(InvalidInput, match=r"\.git/config"):
        hub.registry.pull("alice/old@2", dest)
    assert not (dest / ".git").exists() and not (dest / "m.json").exists()


def test_scan_stream_reads_a_benign_repository_file_by_file(tmp_path: Path) -> None:
    from aiprov.scanning import scan_stream

    for path, data in hugging_face_repository(tmp_path).items():
        assert scan_stream(path, io.BytesIO(data)).verdict != "unsafe", path


def test_datasets_are_scanned_like_model_files(hub: Container, tmp_path: Path) -> None:
    from aiprov.errors import UnsafeModelError

    csv = tmp_path / "calib.csv"
    csv.write_bytes(b"col1,col2,label\n0.1,0.2,a\n0.3,0.4,b\n")
    record, new = hub.datasets.add(csv, "alice/calib", "label")
    assert new and record.rows == 2
    disguised = tmp_path / "data.csv"
    disguised.write_bytes(b"cos\nsystem\n(S'echo'\ntR.")
    with pytest.raises(UnsafeModelError, match=r"data\.csv"):
        hub.datasets.add(disguised, "mallory/data", "label")
    assert [d.full_name for d in hub.datasets.list()] == ["alice/calib"]
