"""`RemoteIpfs.export` trusts nothing the hub sends: a well-formed CAR of other bytes is refused, nothing kept.

A real aiprov hub never sends one (tests/api/test_remote_cli.py exercises the real path); here a hub that lies
is stood in for by a client that serves a genuine CAR of another model, exported by a real local hub.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import MakeModel

from aiprov.config import Container
from aiprov.errors import IntegrityError
from aiprov.records import VersionRecord
from aiprov.remote.ipfs import RemoteIpfs
from aiprov.services.registry import PushRequest


class LyingHub:
    """Stands in for `HubClient` and `RemoteRegistry`: shows `record`, streams the CAR at `car` for any CID."""

    url = "http://hub.invalid"

    def __init__(self, record: VersionRecord, car: Path) -> None:
        self.record, self.car = record, car

    def show(self, ref: str) -> tuple[None, VersionRecord]:
        return None, self.record

    @contextmanager
    def stream(self, path: str, headers: Any = None, *, prefix: str = "") -> Iterator[Any]:
        data = self.car.read_bytes()

        class Response:
            def iter_bytes(self, size: int) -> Iterator[bytes]:
                yield from (data[i : i + size] for i in range(0, len(data), size))

        yield Response()


@pytest.fixture
def two_versions(hub: Container, make_model: MakeModel, tmp_path: Path) -> tuple[VersionRecord, VersionRecord, Path]:
    a = hub.registry.push(make_model({"w.bin": b"a" * 700_000, "c.json": b"{}"}), PushRequest("alice/a")).version
    b = hub.registry.push(make_model({"w.bin": b"b" * 700_000, "c.json": b"{}"}), PushRequest("alice/b")).version
    car = tmp_path / "b.car"
    hub.ipfs.export("alice/b", car, 1)
    return a, b, car


def test_a_car_of_another_model_is_refused_and_nothing_is_written(two_versions: Any, tmp_path: Path) -> None:
    a, _, b_car = two_versions
    liar = LyingHub(a, b_car)
    out = tmp_path / "out" / "a.car"
    out.parent.mkdir()
    with pytest.raises(IntegrityError, match="sent a CAR rooted at"):
        RemoteIpfs(liar, liar).export("alice/a", out, 1)  # type: ignore[arg-type]
    assert list(out.parent.iterdir()) == []


def test_a_car_with_the_right_root_but_other_files_is_refused(two_versions: Any, tmp_path: Path) -> None:
    """A hub that lies about the manifest too: the CIDs are B's, the manifest digest A's."""
    a, b, b_car = two_versions
    forged = dataclasses.replace(a, cids=b.cids)
    liar = LyingHub(forged, b_car)
    out = tmp_path / "out" / "a.car"
    out.parent.mkdir()
    with pytest.raises(IntegrityError, match=f"rebuilds {b.manifest.digest}"):
        RemoteIpfs(liar, liar).export("alice/a", out, 1)  # type: ignore[arg-type]
    assert list(out.parent.iterdir()) == []


def test_the_genuine_car_is_accepted(two_versions: Any, tmp_path: Path) -> None:
    _, b, b_car = two_versions
    liar = LyingHub(b, b_car)
    out = tmp_path / "b-again.car"
    result = RemoteIpfs(liar, liar).export("alice/b", out, 1)  # type: ignore[arg-type]
    assert out.read_bytes() == b_car.read_bytes() and result.root == b.cids.v1  # type: ignore[union-attr]
