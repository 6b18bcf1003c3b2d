"""The hub interface (`aiprov.interface`): both sides implement every member, and a home-only command is typed.

mypy checks the signatures (the assignments in `_both_sides_are_hubs` are what it checks; `test_code_quality`
runs it over `tests/` files it is given below); these tests check at run time that no member is missing on
either side, that no attribute fallback hides one, and that what only a home can do fails clearly on a server.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aiprov import interface
from aiprov.config import Container, load_settings
from aiprov.errors import NotOnServer
from aiprov.interface import HubServices
from aiprov.remote import RemoteContainer

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]

SERVICES = {
    "registry": interface.HubRegistry,
    "log": interface.HubLog,
    "log_signer": interface.HubLogKey,
    "evaluation": interface.HubEvaluations,
    "jobs": interface.HubJobs,
    "datasets": interface.HubDatasets,
    "signatures": interface.HubSignatures,
    "verification": interface.HubVerification,
    "ipfs": interface.HubIpfs,
    "claims": interface.HubClaims,
    "audits": interface.HubAudits,
    "reputation": interface.HubReputation,
    "inference": interface.HubInference,
}

SERVICE_MODULES = (
    "aiprov.services.registry",
    "aiprov.services.transparency",
    "aiprov.services.evaluation",
    "aiprov.services.jobs",
    "aiprov.services.datasets",
    "aiprov.services.signatures",
    "aiprov.services.verification",
    "aiprov.services.ipfs",
    "aiprov.services.claims",
    "aiprov.services.audits",
    "aiprov.services.reputation",
    "aiprov.services.inference",
    "aiprov.core.note",
    "aiprov.remote.services",
    "aiprov.remote.ipfs",
    "aiprov.remote.audits",
    "aiprov.remote.jobs",
)


def _both_sides_are_hubs(local: Container, remote: RemoteContainer) -> tuple[HubServices, HubServices]:
    """What mypy checks: each side is a HubServices, member by member, signature by signature."""
    return local, remote


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[Container, RemoteContainer]]:
    settings = load_settings(tmp_path / "home")
    local = Container(settings)
    local.init()
    # Nothing is sent until a method is called: the services are built without a server listening.
    remote = RemoteContainer("http://127.0.0.1:9", None, home=tmp_path / "client", log_key=None)
    yield local, remote
    local.close()
    remote.close()


def test_the_declared_services_are_every_service_member_of_the_interface() -> None:
    declared = set(interface.members(HubServices)) - {"local", "close", "staking"}
    assert declared == set(SERVICES)


def test_staking_is_one_service_on_both_sides_whose_ledger_is_the_home_or_the_server(
    sides: tuple[Container, RemoteContainer],
) -> None:
    from aiprov.remote.staking import RemoteLedger
    from aiprov.services.staking import HomeLedger, StakeLedger, StakeService

    local, remote = sides
    mine, theirs = local.staking(), remote.staking()
    assert type(mine) is type(theirs) is StakeService
    assert isinstance(mine.ledger, HomeLedger) and isinstance(theirs.ledger, RemoteLedger)
    for name in interface.members(StakeLedger):
        wanted = list(inspect.signature(getattr(StakeLedger, name)).parameters)
        for ledger in (HomeLedger, RemoteLedger):
            assert list(inspect.signature(getattr(ledger, name)).parameters) == wanted, f"{ledger.__name__}.{name}"


def service_class(hub: type[Any], attribute: str) -> type[Any]:
    """The class a hub's `attribute` returns, from its annotation (nothing is built, nothing is sent)."""
    member = inspect.getattr_static(hub, attribute)
    function = getattr(member, "func", None) or getattr(member, "fget", None)
    assert function is not None, f"{hub.__name__}.{attribute} is not a property"
    name = function.__annotations__["return"]  # a string: the modules import these only for type checking
    for module in SERVICE_MODULES:
        found = getattr(importlib.import_module(module), name, None)
        if isinstance(found, type):
            return found
    raise AssertionError(f"{hub.__name__}.{attribute} returns {name}, found in none of {SERVICE_MODULES}")


@pytest.mark.parametrize("hub", [Container, RemoteContainer], ids=["local", "remote"])
def test_each_side_has_every_member_of_every_service_with_the_declared_parameters(hub: type[Any]) -> None:
    for attribute, protocol in SERVICES.items():
        service = service_class(hub, attribute)
        for name in interface.members(protocol):
            where = f"{hub.__name__}.{attribute} ({service.__name__}).{name}"
            member = inspect.getattr_static(service, name, None)
            if member is None:  # a dataclass field (a read-only property in the protocol)
                assert name in getattr(service, "__dataclass_fields__", {}), f"{where} is missing"
                continue
            declared = getattr(protocol, name)
            if inspect.isfunction(declared):
                wanted = list(inspect.signature(declared).parameters)
                have = list(inspect.signature(member).parameters)
                assert have[: len(wanted)] == wanted, f"{where}: parameters {have}, declared {wanted}"


def test_no_class_of_the_remote_client_falls_back_on_getattr() -> None:
    import aiprov.remote.audits
    import aiprov.remote.container
    import aiprov.remote.ipfs
    import aiprov.remote.jobs
    import aiprov.remote.services

    modules = (
        aiprov.remote.services,
        aiprov.remote.container,
        aiprov.remote.ipfs,
        aiprov.remote.audits,
        aiprov.remote.jobs,
    )
    for module in modules:
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                assert "__getattr__" not in vars(cls), f"{module.__name__}.{name} has an attribute fallback"


def test_a_missing_member_is_an_attribute_error_not_a_diagnostic(sides: tuple[Container, RemoteContainer]) -> None:
    _, remote = sides
    with pytest.raises(AttributeError):
        remote.anchoring  # type: ignore[attr-defined]  # noqa: B018 - the access is the test


def test_local_is_the_home_itself_and_a_server_refuses_it_by_name(sides: tuple[Container, RemoteContainer]) -> None:
    local, remote = sides
    assert local.local("`aiprov gc`") is local
    with pytest.raises(NotOnServer) as refused:
        remote.local("`aiprov gc`")
    assert "`aiprov gc` runs on the hub's own machine" in str(refused.value)
    assert refused.value.exit_code == 2


def test_mypy_checks_both_sides_against_the_interface() -> None:
    """The assignment in `_both_sides_are_hubs` type-checks; a remote side lacking a member would not."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", "/dev/null", "--follow-imports", "silent", __file__],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
