"""`aiprov ipfs pin` against a local server implementing the Kubo RPC and Pinning Service API requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import MakeModel
from tests.ipfs.fake_ipfs import TOKEN, fake_ipfs
from tests.ipfs.jstools import ipfs_car
from tests.support import free_port
from tests.support.cli import cli_json

from aiprov.config import Container
from aiprov.errors import BackendError, InvalidInput
from aiprov.records import VersionRecord
from aiprov.services.ipfs import IpfsService
from aiprov.services.registry import PushRequest

FAST = {"backoff_s": 0.01}


@pytest.fixture
def hub(make_container) -> Container:  # type: ignore[no-untyped-def]
    c: Container = make_container()
    return c


@pytest.fixture
def model(make_model: MakeModel) -> Path:
    return make_model({"config.json": b"{}", "weights.bin": bytes(range(256)) * 1200})


def pushed(hub: Container, model: Path) -> VersionRecord:
    record = hub.registry.push(model, PushRequest(name="alice/m")).version
    assert record.cids is not None
    return record


def pin_events(hub: Container) -> list[dict[str, object]]:
    return [e.details for e in hub.registry.usage("alice/m") if e.action == "ipfs.pin"]


def test_kubo_dag_import_receives_the_car_and_the_pin_is_logged(hub: Container, model: Path, tmp_path: Path) -> None:
    record = pushed(hub, model)
    assert record.cids is not None
    with fake_ipfs(tmp_path) as kubo:
        result = IpfsService(hub.registry, api_url=kubo.url, pinner_options=FAST).pin("alice/m", 0)
    assert result.cid == record.cids.v0 and result.via == "kubo" and result.status == "pinned"
    assert len(kubo.cars) == 1
    unpacked = ipfs_car("unpack", str(kubo.cars[0]), "--output", str(tmp_path / "out"))
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (model / "weights.bin").read_bytes()
    [event] = pin_events(hub)
    assert event["cid"] == record.cids.v0 and event["via"] == "kubo" and event["endpoint"] == kubo.url
    assert not list(hub.settings.home.glob(".pin-*"))  # the scratch CAR is gone


def test_kubo_5xx_is_retried_with_backoff(hub: Container, model: Path, tmp_path: Path) -> None:
    pushed(hub, model)
    with fake_ipfs(tmp_path, fail_first=2) as kubo:
        result = IpfsService(hub.registry, api_url=kubo.url, pinner_options=FAST).pin("alice/m", 1)
    assert result.status == "pinned"
    assert [m for m, _ in kubo.requests] == ["POST"] * 3


def test_kubo_down_is_one_clear_line_and_nothing_is_logged(hub: Container, model: Path) -> None:
    pushed(hub, model)
    service = IpfsService(hub.registry, api_url=f"http://127.0.0.1:{free_port()}", pinner_options=FAST)
    with pytest.raises(BackendError) as caught:
        service.pin("alice/m", 0)
    message = caught.value.diagnostics()
    assert "unavailable after 4 attempts" in message and "cannot reach" in message and "\n" not in message
    assert pin_events(hub) == []


def test_pinning_service_pins_and_polls_until_pinned(hub: Container, model: Path, tmp_path: Path) -> None:
    record = pushed(hub, model)
    assert record.cids is not None
    with fake_ipfs(tmp_path) as service:
        ipfs = IpfsService(
            hub.registry, pinning_url=service.url, pinning_token=TOKEN, pinner_options={**FAST, "poll_s": 0.01}
        )
        result = ipfs.pin("alice/m", 1)
    assert result.cid == record.cids.v1 and result.via == "pinning-service" and result.status == "pinned"
    [pin] = service.pins.values()
    assert pin["pin"] == {"cid": record.cids.v1, "name": "alice/m@1"}
    assert service.polls[str(result.request_id)] == 2
    [event] = pin_events(hub)
    assert event["request_id"] == result.request_id and event["cid"] == record.cids.v1


def test_pinning_service_refusing_the_token_is_not_retried(hub: Container, model: Path, tmp_path: Path) -> None:
    pushed(hub, model)
    with fake_ipfs(tmp_path) as service:
        ipfs = IpfsService(hub.registry, pinning_url=service.url, pinning_token="wrong", pinner_options=FAST)
        with pytest.raises(BackendError, match=r"refused the request \(401: UNAUTHORIZED") as caught:
            ipfs.pin("alice/m", 0)
    assert "AIPROV_IPFS_PINNING_TOKEN" in caught.value.diagnostics()
    assert len(service.requests) == 1
    assert pin_events(hub) == []


def test_pinning_service_failing_the_pin_is_an_error(hub: Container, model: Path, tmp_path: Path) -> None:
    pushed(hub, model)
    with fake_ipfs(tmp_path, final_status="failed") as service:
        ipfs = IpfsService(
            hub.registry, pinning_url=service.url, pinning_token=TOKEN, pinner_options={**FAST, "poll_s": 0.01}
        )
        with pytest.raises(BackendError, match="failed to pin"):
            ipfs.pin("alice/m", 0)
    assert pin_events(hub) == []


def test_no_endpoint_configured_says_which_settings_to_set(hub: Container, model: Path) -> None:
    pushed(hub, model)
    with pytest.raises(InvalidInput) as caught:
        IpfsService(hub.registry).pin("alice/m", 0)
    assert "AIPROV_IPFS_API" in caught.value.diagnostics() and "AIPROV_IPFS_PINNING_URL" in caught.value.diagnostics()


@pytest.fixture
def env_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    with fake_ipfs(tmp_path) as kubo:
        monkeypatch.setenv("AIPROV_IPFS_API", kubo.url)
        yield kubo.url


def test_cli_pin_reads_the_kubo_url_from_the_environment(home: Path, model: Path, env_api: str) -> None:
    cli_json(home, "push", str(model), "--name", "alice/m")
    result = cli_json(home, "ipfs", "pin", "alice/m")
    assert result["via"] == "kubo" and result["endpoint"] == env_api
    events = cli_json(home, "usage", "alice/m")["events"]
    assert [e["action"] for e in events] == ["ipfs.pin", "push"]
