"""The Hub upload protocol through `huggingface_hub` against a real `aiprov serve`: every commit is a version,
scanned, registered and logged as `aiprov push` is."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from apitools import Server
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError, RepositoryNotFoundError
from tests.support.cli import remote_json
from tests.support.hf import Exploit

from aiprov.core.digest import Digest
from aiprov.core.hf import commit_id

FILES = {"config.json": b'{"layers": 2}', "weights/a.bin": bytes(range(256)) * 64}


@pytest.fixture
def alice(server: Server) -> tuple[Server, str, HfApi]:
    token = server.add_user("alice")
    return server, token, HfApi(endpoint=server.base_url, token=token)


def _folder(make_model: Any, files: dict[str, bytes]) -> Path:
    folder: Path = make_model(files)
    return folder


def test_upload_folder_makes_a_version_that_verify_accepts(alice: tuple[Server, str, HfApi], make_model: Any) -> None:
    server, token, api = alice
    assert api.create_repo("alice/up").endswith("/alice/up")
    info = api.upload_folder(folder_path=_folder(make_model, FILES), repo_id="alice/up", commit_message="first")
    shown = remote_json(server, token, "show", "alice/up")
    assert shown["version"] == 1 and shown["author"] == "alice"
    assert info.oid == commit_id(Digest.parse(shown["digest"]))
    assert {f["path"]: f["sha256"] for f in shown["files"]} == {p: Digest.of(b).hex for p, b in FILES.items()}
    assert shown["lineage"]["metadata"] == {"commit": {"summary": "first", "description": ""}}
    verified = remote_json(server, token, "verify", "alice/up@1")
    assert verified["ok"] is True
    events = server.client(token).get("/api/v1/models/alice/up/events").json()
    # scanned as a push is: a.bin has no format the scanner knows, which it says rather than calling it safe
    assert [e["action"] for e in events] == ["push"] and events[0]["details"]["scan"] == "unsupported"


def test_upload_file_and_delete_file_each_make_a_new_version_from_the_latest(
    alice: tuple[Server, str, HfApi], make_model: Any
) -> None:
    server, token, api = alice
    api.upload_folder(folder_path=_folder(make_model, FILES), repo_id="alice/up")
    with pytest.warns(UserWarning, match="this hub does not validate model card metadata"):
        api.upload_file(path_or_fileobj=b"# card\n", path_in_repo="README.md", repo_id="alice/up")
    two = remote_json(server, token, "show", "alice/up@2")
    assert sorted(f["path"] for f in two["files"]) == ["README.md", "config.json", "weights/a.bin"]
    api.delete_file("weights/a.bin", repo_id="alice/up")
    three = remote_json(server, token, "show", "alice/up@3")
    assert sorted(f["path"] for f in three["files"]) == ["README.md", "config.json"]
    assert api.model_info("alice/up").sha == commit_id(Digest.parse(three["digest"]))
    with pytest.raises(RemoteEntryNotFoundError):
        api.delete_file("weights/a.bin", repo_id="alice/up")  # gone already: nothing to delete, no version 4
    with pytest.raises(RemoteEntryNotFoundError):
        api.delete_folder("nothing", repo_id="alice/up")
    assert remote_json(server, token, "show", "alice/up")["version"] == 3
    with pytest.raises(HfHubHTTPError) as again:  # back to version 2's files: a model holds them once
        api.upload_file(path_or_fileobj=FILES["weights/a.bin"], path_in_repo="weights/a.bin", repo_id="alice/up")
    assert again.value.response.status_code == 409 and "version 2 of alice/up" in str(again.value)
    assert remote_json(server, token, "show", "alice/up")["version"] == 3


def test_a_malicious_pickle_is_refused_with_the_reason_and_nothing_is_registered(
    alice: tuple[Server, str, HfApi], make_model: Any
) -> None:
    server, token, api = alice
    folder = _folder(make_model, {**FILES, "model.pkl": pickle.dumps(Exploit())})
    with pytest.raises(HfHubHTTPError) as refused:
        api.upload_folder(folder_path=folder, repo_id="alice/evil")
    assert refused.value.response.status_code == 422
    message = str(refused.value)
    assert "refused, 1 unsafe file(s); model.pkl" in message and "system" in message
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/evil")
    events = server.client(token).get("/api/v1/models/alice/evil/events").json()
    assert [e["action"] for e in events] == ["flagged"]


def test_another_owners_namespace_and_a_bad_token_are_refused(
    alice: tuple[Server, str, HfApi], make_model: Any
) -> None:
    server, _, api = alice
    api.upload_folder(folder_path=_folder(make_model, FILES), repo_id="alice/up")
    bob = HfApi(endpoint=server.base_url, token=server.add_user("bob"))
    with pytest.raises(HfHubHTTPError) as forbidden:
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/up")
    assert forbidden.value.response.status_code == 403 and "bob may not write under alice/" in str(forbidden.value)
    with pytest.raises(HfHubHTTPError) as other:
        bob.create_repo("alice/new")
    assert other.value.response.status_code == 403
    stranger = HfApi(endpoint=server.base_url, token="aiprov_00000000_bad")
    with pytest.raises(HfHubHTTPError) as bad:
        stranger.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/up")
    assert bad.value.response.status_code == 401
    assert api.model_info("alice/up").sha == api.model_info("alice/up", revision="1").sha  # nothing committed


def test_create_repo_of_an_existing_model_is_a_conflict_unless_exist_ok(
    alice: tuple[Server, str, HfApi], make_model: Any
) -> None:
    _, _, api = alice
    api.upload_folder(folder_path=_folder(make_model, FILES), repo_id="alice/up")
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_repo("alice/up")
    assert exists.value.response.status_code == 409
    assert api.create_repo("alice/up", exist_ok=True).endswith("/alice/up")
    with pytest.raises(HfHubHTTPError) as pull_request:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/up", create_pr=True)
    assert pull_request.value.response.status_code == 422 and "no pull requests" in str(pull_request.value)


def test_a_commit_larger_than_the_body_limit_is_refused_before_upload(make_server: Any, make_model: Any) -> None:
    server = make_server(env={"AIPROV_MAX_BODY_MB": "1"})
    api = HfApi(endpoint=server.base_url, token=server.add_user("alice"))
    with pytest.raises(HfHubHTTPError) as large:
        # each file under the LFS threshold (half the body limit), so all go inline, together over the limit
        parts = {f"part-{i}.bin": os.urandom(400_000) for i in range(3)}
        api.upload_folder(folder_path=_folder(make_model, parts), repo_id="alice/big")
    assert large.value.response.status_code == 413 and "aiprov push" in str(large.value)
