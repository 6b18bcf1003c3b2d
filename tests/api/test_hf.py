"""The Hugging Face Hub protocol, through `huggingface_hub` (and `transformers`) against a real `aiprov serve`.

In-process calls pass `endpoint=server.base_url`, which is what `HF_ENDPOINT` sets for a process; the tests that
set `HF_ENDPOINT` itself run the client in a subprocess, as a user's script or `hf download` would run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import Server
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from tests.support.cli import remote_json

from aiprov.core.digest import Digest
from aiprov.core.hf import commit_id

V1 = {"config.json": b'{"layers": 2}', "weights/a.bin": bytes(range(256)) * 64, "weights/b.bin": b"\x07" * 5000}
V2 = {**V1, "config.json": b'{"layers": 3}', "README.md": b"# two\n"}


def _bytes_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _push(server: Server, token: str, make_model: Any, files: dict[str, bytes], name: str = "alice/m") -> str:
    """Push `files` as a new version of `name` through the remote CLI; return its commit id."""
    pushed = remote_json(server, token, "push", str(make_model(files)), "--name", name)
    return commit_id(Digest.parse(pushed["digest"]))


@pytest.fixture
def two_versions(server: Server, make_model: Any) -> tuple[Server, str, str, str]:
    """A server where alice/m has versions 1 (alias `prod`) and 2; returns (server, alice's token, commit 1, 2)."""
    alice = server.add_user("alice")
    one = _push(server, alice, make_model, V1)
    two = _push(server, alice, make_model, V2)
    remote_json(server, alice, "alias", "alice/m@1", "prod")
    return server, alice, one, two


def _downloads(server: Server, token: str, name: str = "alice/m") -> list[dict[str, Any]]:
    r = server.client(token).get(f"/api/v1/models/{name}/usage", params={"action": "download", "limit": 1000})
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()
    return events


def test_snapshot_download_by_main_number_alias_and_commit_gives_each_versions_bytes(
    two_versions: tuple[Server, str, str, str], tmp_path: Path
) -> None:
    server, alice, one, two = two_versions
    expected = {"main": (two, V2), "2": (two, V2), "1": (one, V1), "prod": (one, V1), one: (one, V1), two: (two, V2)}
    for revision, (commit, files) in expected.items():
        cache = tmp_path / f"cache-{revision}"
        folder = Path(
            snapshot_download("alice/m", revision=revision, cache_dir=cache, endpoint=server.base_url, token=alice)
        )
        assert folder.name == commit  # the snapshot is stored under the version's commit id
        assert _bytes_of(folder) == files
        blobs = {p.name for p in (cache / "models--alice--m" / "blobs").iterdir()}
        assert blobs == {hashlib.sha256(b).hexdigest() for b in files.values()}  # ETag = sha256
    events = _downloads(server, alice)  # one per file fetched, each by alice, of the version it came from
    assert len(events) == sum(len(files) for _, files in expected.values())
    assert {(e["actor"], e["details"]["version"]) for e in events} == {("alice", 1), ("alice", 2)}


def test_hf_hub_download_by_each_revision_and_every_download_is_a_usage_event(
    two_versions: tuple[Server, str, str, str], tmp_path: Path
) -> None:
    server, alice, one, _ = two_versions
    for n, revision in enumerate(["main", "2", "prod", one]):
        path = hf_hub_download(
            "alice/m",
            "config.json",
            revision=revision,
            cache_dir=tmp_path / str(n),
            endpoint=server.base_url,
            token=alice,
        )
        assert Path(path).read_bytes() == (V2 if revision in ("main", "2") else V1)["config.json"]
    events = _downloads(server, alice)  # the fixture pushed and downloaded nothing
    assert len(events) == 4
    assert all(e["actor"] == "alice" and e["details"]["path"] == "config.json" for e in events)
    assert sorted(e["details"]["version"] for e in events) == [1, 1, 2, 2]


def test_errors_are_the_exceptions_huggingface_hub_raises(
    two_versions: tuple[Server, str, str, str], tmp_path: Path
) -> None:
    server, alice, _, _ = two_versions

    def fetch(repo: str, name: str = "config.json", revision: str = "main", token: str | None = alice) -> None:
        hf_hub_download(repo, name, revision=revision, cache_dir=tmp_path, endpoint=server.base_url, token=token)

    with pytest.raises(RepositoryNotFoundError) as repo:
        fetch("alice/nothing")
    assert "no model named alice/nothing" in str(repo.value)
    with pytest.raises(RevisionNotFoundError):
        fetch("alice/m", revision="7")
    with pytest.raises(RevisionNotFoundError):
        fetch("alice/m", revision="0" * 40)
    with pytest.raises(RemoteEntryNotFoundError):
        fetch("alice/m", "tokenizer.json")  # transformers probes optional files: EntryNotFound, not RepoNotFound
    assert (tmp_path / "models--alice--m" / ".no_exist").is_dir()  # cached as missing, per commit
    with pytest.raises(HfHubHTTPError) as bad:
        fetch("alice/m", token="not-a-token")
    assert not isinstance(bad.value, RepositoryNotFoundError) and bad.value.response.status_code == 401
    api = HfApi(endpoint=server.base_url, token=alice)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("bob/none")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("alice/m", revision="staging")
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree("alice/m", "no/such/dir"))


def test_a_hub_without_anonymous_reads_answers_gated_repo_without_a_token(
    make_server: Callable[..., Server], make_model: Any, tmp_path: Path
) -> None:
    server = make_server(env={"AIPROV_ANONYMOUS_READS": "false"})
    alice = server.add_user("alice")
    _push(server, alice, make_model, V1)
    with pytest.raises(GatedRepoError):
        hf_hub_download("alice/m", "config.json", cache_dir=tmp_path, endpoint=server.base_url, token=False)
    path = hf_hub_download("alice/m", "config.json", cache_dir=tmp_path, endpoint=server.base_url, token=alice)
    assert Path(path).read_bytes() == V1["config.json"]
    assert HfApi(endpoint=server.base_url, token=alice).model_info("alice/m").private is True


def test_model_info_and_tree_give_commit_sizes_and_sha256s(two_versions: tuple[Server, str, str, str]) -> None:
    server, alice, one, two = two_versions
    api = HfApi(endpoint=server.base_url, token=alice)
    info = api.model_info("alice/m", files_metadata=True)
    assert info.sha == two
    assert {s.rfilename: (s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings or []} == {
        p: (len(b), hashlib.sha256(b).hexdigest()) for p, b in V2.items()
    }
    assert api.model_info("alice/m", revision="prod").sha == one
    top = list(api.list_repo_tree("alice/m", revision="1"))
    assert [(type(i).__name__, i.path) for i in top] == [
        ("RepoFile", "config.json"),
        ("RepoFolder", "weights"),
    ]
    below = list(api.list_repo_tree("alice/m", "weights", revision=one))
    assert [(i.path, getattr(i, "size", None)) for i in below] == [("weights/a.bin", 16384), ("weights/b.bin", 5000)]


def test_tree_pages_follow_the_link_header(two_versions: tuple[Server, str, str, str]) -> None:
    server, alice, _, two = two_versions
    from huggingface_hub.utils import paginate

    url = f"{server.base_url}/api/models/alice/m/tree/main"
    items = list(paginate(url, params={"recursive": True, "limit": 2}, headers={"Authorization": f"Bearer {alice}"}))
    assert [i["path"] for i in items] == ["README.md", "config.json", "weights", "weights/a.bin", "weights/b.bin"]
    first = server.client(alice).get(url, params={"recursive": True, "limit": 2})
    assert 'rel="next"' in first.headers["link"] and first.headers["x-repo-commit"] == two
    last = server.client(alice).get(url, params={"recursive": True, "limit": 2, "cursor": 4})
    assert "link" not in last.headers and len(last.json()) == 1


class CuttingProxy:
    """A TCP proxy to the server that cuts the first response longer than `cut_after` bytes at that byte.

    What a dropped connection does to a download; it records the bytes requests sent (`requests`) and the status
    of each response that began a read (`statuses`).
    """

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.cuts = 0
        self.requests: list[bytes] = []
        self.statuses: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, responses: bool) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if not responses:
                    self.requests.append(data)
                elif data.startswith(b"HTTP/1.1 "):
                    self.statuses.append(data[9:12])
                elif self.cuts == 0 and sent + len(data) > self.cut_after:
                    self.cuts += 1
                    sink.sendall(data[: self.cut_after - sent])
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (source, sink):
            with_shutdown(s)

    def close(self) -> None:
        self.listener.close()


def with_shutdown(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@pytest.fixture
def proxy(server: Server) -> Iterator[Callable[[int], CuttingProxy]]:
    made: list[CuttingProxy] = []

    def make(cut_after: int) -> CuttingProxy:
        port = int(server.base_url.rsplit(":", 1)[1])
        made.append(CuttingProxy(port, cut_after))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_a_download_cut_mid_file_resumes_with_range_and_is_one_usage_event(
    server: Server, make_model: Any, proxy: Callable[[int], CuttingProxy], tmp_path: Path
) -> None:
    alice = server.add_user("alice")
    # The client keeps what it read in whole 10 MiB chunks, so the cut comes after two; the rest is more than
    # loopback buffers hold, so the cut request cannot have sent the last byte.
    big = os.urandom(64 * 2**20)
    _push(server, alice, make_model, {"big.bin": big}, name="alice/big")
    cutter = proxy(24 * 2**20)
    path = hf_hub_download(
        "alice/big", "big.bin", cache_dir=tmp_path, endpoint=f"http://127.0.0.1:{cutter.port}", token=alice
    )
    assert cutter.cuts == 1
    assert hashlib.sha256(Path(path).read_bytes()).digest() == hashlib.sha256(big).digest()
    sent = b"".join(cutter.requests).lower()
    assert sent.count(b"get /alice/big/resolve/main/big.bin") == 2 and b"range: bytes=20971520-" in sent
    assert cutter.statuses[-1] == b"206"
    events = _downloads(server, alice, "alice/big")
    assert [e["details"]["path"] for e in events] == ["big.bin"]  # only the request that sent the last byte


def _run_client(server: Server, token: str, code: str, tmp_path: Path) -> Any:
    """Run `code` in a fresh Python with HF_ENDPOINT and HF_TOKEN set; return the JSON it printed last."""
    env = {
        **os.environ,
        "HF_ENDPOINT": server.base_url,
        "HF_TOKEN": token,
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TRANSFORMERS_VERBOSITY": "error",
    }
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_hf_endpoint_and_the_hf_cli_download_from_aiprov(
    two_versions: tuple[Server, str, str, str], tmp_path: Path
) -> None:
    server, alice, one, _ = two_versions
    code = "import json, huggingface_hub as h; print(json.dumps(h.snapshot_download('alice/m', revision='prod')))"
    folder = Path(_run_client(server, alice, code, tmp_path))
    assert folder.name == one and _bytes_of(folder) == V1
    hf = Path(sys.executable).with_name("hf")
    env = {**os.environ, "HF_ENDPOINT": server.base_url, "HF_TOKEN": alice, "HF_HUB_DISABLE_TELEMETRY": "1"}
    out = tmp_path / "local"
    result = subprocess.run(
        [str(hf), "download", "alice/m", "--revision", "2", "--local-dir", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert {p: b for p, b in _bytes_of(out).items() if not p.startswith(".cache/")} == V2


def test_transformers_loads_a_tiny_bert_model_config_and_tokenizer_from_aiprov(
    server: Server, make_model: Any, tmp_path: Path
) -> None:
    import torch  # dev dependencies: their absence is a failure, not a skip
    import transformers

    alice = server.add_user("alice")
    made = tmp_path / "tiny-bert"
    config = transformers.BertConfig(
        vocab_size=12,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=8,
        max_position_embeddings=16,
    )
    torch.manual_seed(17)
    transformers.BertModel(config).save_pretrained(made)  # model.safetensors, a few KB of random weights
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "aiprov"]) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(made)
    assert (made / "model.safetensors").stat().st_size < 16_000
    remote_json(server, alice, "push", str(made), "--name", "alice/tiny-bert")
    local_ids = transformers.AutoTokenizer.from_pretrained(made)("hello aiprov world")["input_ids"]
    with torch.no_grad():
        local_out = transformers.AutoModel.from_pretrained(made)(torch.tensor([local_ids])).last_hidden_state
    code = (
        "import json, torch, transformers as t\n"
        "c = t.AutoConfig.from_pretrained('alice/tiny-bert')\n"
        "k = t.AutoTokenizer.from_pretrained('alice/tiny-bert')\n"
        "m = t.AutoModel.from_pretrained('alice/tiny-bert')\n"
        "ids = k('hello aiprov world')['input_ids']\n"
        "with torch.no_grad():\n"
        "    out = m(torch.tensor([ids])).last_hidden_state\n"
        "print(json.dumps([c.model_type, c.hidden_size, type(m).__name__, ids, out.tolist()]))"
    )
    model_type, hidden, cls, ids, out = _run_client(server, alice, code, tmp_path)
    assert (model_type, hidden, cls, ids) == ("bert", 8, "BertModel", local_ids)
    assert torch.allclose(torch.tensor(out), local_out, atol=1e-6)  # the same weights, so the same activations
    downloaded = {e["details"]["path"] for e in _downloads(server, alice, "alice/tiny-bert")}
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= downloaded


def test_hf_routes_shadow_no_other_route(two_versions: tuple[Server, str, str, str]) -> None:
    server, alice, _, _ = two_versions
    client = server.client(alice)
    assert client.get("/api/v1/models/alice/m").json()["version"] == 2
    assert client.get("/docs").headers["content-type"].startswith("text/html")
    assert "/api/models/{owner}/{name}/tree/{revision}" in client.get("/openapi.json").json()["paths"]
    assert client.get("/checkpoint").status_code == 200
    files = client.get("/api/v1/models/alice/m/versions/1/files/config.json")
    assert files.content == V1["config.json"] and files.headers["etag"].startswith('"sha256:')


def test_bad_hf_requests_are_4xx_without_server_paths(two_versions: tuple[Server, str, str, str]) -> None:
    server, alice, _, _ = two_versions
    client = server.client(alice)
    for url in [
        "/alice/m/resolve/" + "x" * 200 + "/config.json",
        "/api/models/alice/m/tree/main?cursor=abc",
        "/api/models/alice/m/tree/main?cursor=99",
        "/api/models/alice/m/tree/main?limit=0",
        "/Alice!/m/resolve/main/config.json",
        "/alice/m/resolve/main/%00%0a%ff",
        "/alice/m/resolve/main/../../etc/passwd",
    ]:
        r = client.get(url)
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
        assert str(server.home) not in r.text and "Traceback" not in r.text
        assert "\n" not in r.headers.get("x-error-message", "")
