"""Listing models by downloads, by a metric, by reputation, and by file format: on SQLite and on PostgreSQL."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import MakeModel

from aiprov.config import Container
from aiprov.core.names import Ref
from aiprov.errors import InvalidInput
from aiprov.records import EvaluationRecord, ModelFilter
from aiprov.services.registry import PushRequest

NAMES = ["alice/a", "alice/b", "bob/c", "bob/d", "carol/e"]


def _push(hub: Container, make_model: MakeModel, name: str, content: bytes) -> None:
    hub.registry.push(make_model({"w.bin": content}), PushRequest(name), actor=name.split("/")[0])


def _evaluate(hub: Container, ref: str, metrics: dict[str, float]) -> None:
    """An evaluation row of `ref`, as the evaluation service records one (a log event, then the row)."""
    now = datetime.now(UTC)
    with hub.db.unit(write=True) as u:
        model, version = u.resolve(Ref.parse(ref))
        leaf = u.add_event(
            actor="tester", action="test.evaluate", subject=version.digest, model=model.full_name, details={}, now=now
        )
        record = EvaluationRecord(
            0, model.full_name, version.number, version.digest, "sklearn:iris", "sha256:" + "0" * 64, "classification",
            {}, metrics, {}, 0.1, "tester", now, leaf,
        )  # fmt: skip
        u.add_evaluation(version, record)


@pytest.fixture
def listed(hub: Container, make_model: MakeModel) -> Container:
    for i, name in enumerate(NAMES):
        _push(hub, make_model, name, bytes([i]) * 4)
    return hub


def _names(hub: Container, sort: str, f: ModelFilter | None = None) -> list[str]:
    return [m.full_name for m in hub.registry.list(f or ModelFilter(), sort)]


def _check_pages(hub: Container, sort: str, expected: list[str]) -> None:
    """Every window of the order is the same slice of it, across the ranked and the unranked models."""
    for offset in range(len(expected) + 1):
        for limit in (1, 2, 3):
            page = hub.registry.page(ModelFilter(), sort=sort, offset=offset, limit=limit)
            assert page.total == len(expected)
            assert [m.full_name for m in page.models] == expected[offset : offset + limit], (sort, offset, limit)


def test_sort_by_downloads_counts_download_events(listed: Container) -> None:
    for ref, times in (("bob/c", 2), ("alice/b", 1)):
        _, version = listed.registry.show(ref)
        for _ in range(times):
            listed.registry.record_download(version)
    expected = ["bob/c", "alice/b", "alice/a", "bob/d", "carol/e"]
    assert _names(listed, "downloads") == expected
    _check_pages(listed, "downloads", expected)
    assert _names(listed, "downloads", ModelFilter(owner="alice")) == ["alice/b", "alice/a"]


def test_sort_by_metric_ranks_the_latest_versions_best_value(listed: Container, make_model: MakeModel) -> None:
    _evaluate(listed, "alice/b", {"accuracy": 0.9, "mae": 0.5})
    _evaluate(listed, "alice/b", {"accuracy": 0.8})  # the best of a version's evaluations counts
    _evaluate(listed, "bob/d", {"accuracy": 0.95})
    _evaluate(listed, "carol/e", {"accuracy": 0.99, "mae": 0.1})
    _push(listed, make_model, "carol/e", b"a newer version, not evaluated")  # no longer its latest's score
    _evaluate(listed, "alice/a", {"mae": 0.3})
    expected = ["bob/d", "alice/b", "alice/a", "bob/c", "carol/e"]
    assert _names(listed, "metric:accuracy") == expected
    _check_pages(listed, "metric:accuracy", expected)
    assert _names(listed, "metric:mae")[:2] == ["alice/a", "alice/b"]  # an error: lowest first


def test_sort_by_reputation_puts_scored_authors_first_and_penalised_ones_last(listed: Container) -> None:
    listed.claims.rate("alice/a", 5, actor="bob")  # alice +2
    listed.claims.rate("carol/e", 1, actor="bob")  # carol -2
    expected = ["alice/a", "alice/b", "bob/c", "bob/d", "carol/e"]
    assert _names(listed, "reputation") == expected
    listed.claims.rate("bob/c", 5, actor="alice")
    listed.claims.rate("bob/c", 5, actor="carol")  # bob +4: ahead of alice now, at once (no stale cache)
    expected = ["bob/c", "bob/d", "alice/a", "alice/b", "carol/e"]
    assert _names(listed, "reputation") == expected
    _check_pages(listed, "reputation", expected)


def test_unknown_sorts_are_refused(listed: Container) -> None:
    for sort in ("size", "metric:", "metric:nope", "Name"):
        with pytest.raises(InvalidInput, match="cannot sort models by"):
            listed.registry.page(ModelFilter(), sort=sort)


def test_format_filter_and_per_file_verdicts_in_the_push_event(hub: Container, make_model: MakeModel) -> None:
    from safetensors.numpy import save

    tensors = save({"w": np.arange(6, dtype="f4")})
    hub.registry.push(make_model({"model.safetensors": tensors, "README.md": b"# card\n"}), PushRequest("alice/st"))
    hub.registry.push(make_model({"model.pkl": pickle.dumps([1, 2, 3], protocol=4)}), PushRequest("alice/pk"))
    hub.registry.push(make_model({"blob.bin": b"\x00\x01opaque"}), PushRequest("alice/raw"))

    def formats(fmt: str) -> list[str]:
        return [m.full_name for m in hub.registry.list(ModelFilter(format=fmt))]

    assert formats("safetensors") == ["alice/st"]
    assert formats("pickle") == ["alice/pk"]
    assert formats("onnx") == []
    hub.registry.push(make_model({"model.pkl": pickle.dumps([4], protocol=4)}), PushRequest("alice/st"))
    assert formats("safetensors") == []  # the latest version's files count
    assert formats("pickle") == ["alice/pk", "alice/st"]

    evidence = hub.verification.evidence("alice/st@1")
    assert [e.path for e in evidence.record.manifest.entries] == ["README.md", "model.safetensors"]
    assert evidence.event.details["file_scans"] == [["text", "safe"], ["safetensors", "safe"]]
    assert hub.verification.evidence("alice/raw").event.details["file_scans"][0][1] == "unsupported"
    report = hub.verification.verify("alice/st@1")
    assert report.ok, report.to_json()


def test_ls_takes_format_and_sort(home: Path, make_model: MakeModel) -> None:
    from tests.support.cli import cli, cli_json

    cli_json(home, "push", str(make_model({"a.json": b'{"x": 1}'})), "--name", "alice/j")
    cli_json(home, "push", str(make_model({"m.pkl": pickle.dumps([1], protocol=4)})), "--name", "bob/p")
    cli_json(home, "pull", "bob/p", str(home.parent / "out"))
    assert [m["name"] for m in cli_json(home, "ls", "--format", "json")] == ["alice/j"]
    assert [m["name"] for m in cli_json(home, "ls", "--sort", "downloads")] == ["bob/p", "alice/j"]
    assert [m["name"] for m in cli_json(home, "ls", "--sort", "metric:accuracy")] == ["alice/j", "bob/p"]
    for args, message in (
        (("--sort", "size"), "cannot sort models by 'size'"),
        (("--sort", "metric:speed"), "cannot sort models by 'metric:speed'"),
        (("--format", "Bad Format"), "is not a file format"),
    ):
        ran = cli(home, "ls", *args)
        assert ran[0] == 2 and message in ran.error(), (args, ran)


def test_a_push_event_without_file_verdicts_still_verifies(
    hub: Container, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As events logged before per-file verdicts were recorded (or a list too long for a log entry)."""
    from aiprov.services import registry

    monkeypatch.setattr(registry, "MAX_FILE_SCANS_BYTES", 10)
    hub.registry.push(make_model({"a.txt": b"words", "b.txt": b"more"}), PushRequest("alice/old"))
    details = hub.verification.evidence("alice/old").event.details
    assert "file_scans" not in details and details["scan"] == "safe"
    report = hub.verification.verify("alice/old")
    assert report.ok, report.to_json()
    assert [m.full_name for m in hub.registry.list(ModelFilter(format="text"))] == ["alice/old"]  # the rows have it
