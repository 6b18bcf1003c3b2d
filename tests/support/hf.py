"""What the Hugging Face upload tests share: a pickle that would run a command, a hub with a small body limit so
weights must go around the commit body (LFS or Xet), and the check that an unsafe upload left nothing but a flag."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from aiprov.services.hf_lfs import lfs_threshold

BODY_MB = 1
"""A deliberately small body limit: a commit carries at most 1 MiB, so the weights below must go through LFS/Xet."""
THRESHOLD = lfs_threshold(BODY_MB * 2**20)
WEIGHTS = os.urandom(3 * 2**20)
FILES = {"config.json": b'{"layers": 2}', "weights/model.safetensors": WEIGHTS}


class Exploit:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("echo pwned",))


def small_hub(make_server: Callable[..., Any]) -> tuple[Any, str, Any]:
    """(a server with the small body limit, alice's token, an HfApi client of it as alice)."""
    from huggingface_hub import HfApi

    server = make_server(env={"AIPROV_MAX_BODY_MB": str(BODY_MB)})
    token = server.add_user("alice")
    return server, token, HfApi(endpoint=server.base_url, token=token)


def assert_refused_as_unsafe(refused: pytest.ExceptionInfo[Any], small: tuple[Any, str, Any], repo: str) -> None:
    """huggingface_hub shows a 422 naming the pickle and its import; the repo does not exist; only a flag is logged."""
    from huggingface_hub.errors import RepositoryNotFoundError

    server, token, api = small
    assert refused.value.response.status_code == 422
    assert "refused, 1 unsafe file(s); model.pkl" in str(refused.value) and "system" in str(refused.value)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(repo)
    events = server.client(token).get(f"/api/v1/models/{repo}/events").json()
    assert [e["action"] for e in events] == ["flagged"]
