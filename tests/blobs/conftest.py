"""One real SeaweedFS per test session (per xdist worker), and the blob stores the contract tests run on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from blobtools import StoreCase, Weed, local_case, s3_case, start_weed, stop_weed


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    try:
        server = start_weed(tmp_path_factory.mktemp("weed"))
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)  # never skip: a missing weed is a broken setup
    try:
        yield server
    finally:
        stop_weed(server)


@pytest.fixture
def s3_env(weed: Weed, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS settings of the test SeaweedFS, set in this process's environment for the test."""
    env = weed.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


@pytest.fixture(params=["local", "s3"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    """Each blob store contract test runs on the local folder and on S3 (a real SeaweedFS)."""
    if request.param == "local":
        return local_case(tmp_path / "blobs")
    request.getfixturevalue("s3_env")
    return s3_case(request.getfixturevalue("weed"), tmp_path / "staging")
