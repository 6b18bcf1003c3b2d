"""`RemoteContainer`: what `cli.common.container(ctx)` returns when a server is given."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from aiprov.errors import NotOnServer
from aiprov.remote.audits import RemoteAudits, RemoteClaims, RemoteReputation
from aiprov.remote.client import HubClient
from aiprov.remote.ipfs import RemoteIpfs
from aiprov.remote.jobs import RemoteJobs
from aiprov.remote.services import (
    RemoteDatasets,
    RemoteEvaluations,
    RemoteInference,
    RemoteLog,
    RemoteLogKey,
    RemoteRegistry,
    RemoteSignatures,
    RemoteVerification,
    ServerPins,
)

if TYPE_CHECKING:
    from aiprov.config import Container
    from aiprov.services.staking import StakeService


class RemoteContainer:
    """The services of a hub at `url`, seen through its API with `token` (None: anonymous reads only).

    `home` keeps what this client trusts of each server (its pinned log key and last verified checkpoint);
    `log_key` pins the log key outright. Commands that need more than the API offers (init, quickstart, gc,
    eval --key, tile export) ask for `local(...)`, which raises NotOnServer.
    """

    def __init__(self, url: str, token: str | None, *, home: Path, log_key: str | None = None) -> None:
        self.url = url
        self.home = home
        self.client = HubClient(url, token)
        self.pins = ServerPins(url, home, log_key)

    @cached_property
    def registry(self) -> RemoteRegistry:
        return RemoteRegistry(self.client)

    @cached_property
    def log(self) -> RemoteLog:
        return RemoteLog(self.client)

    @cached_property
    def evaluation(self) -> RemoteEvaluations:
        return RemoteEvaluations(self.client)

    @cached_property
    def jobs(self) -> RemoteJobs:
        return RemoteJobs(self.client)

    @cached_property
    def verification(self) -> RemoteVerification:
        return RemoteVerification(self.registry, self.log, self.pins)

    @cached_property
    def datasets(self) -> RemoteDatasets:
        return RemoteDatasets(self.registry)

    @cached_property
    def signatures(self) -> RemoteSignatures:
        return RemoteSignatures(self.registry)

    @cached_property
    def inference(self) -> RemoteInference:
        return RemoteInference(self.registry)

    @cached_property
    def ipfs(self) -> RemoteIpfs:
        return RemoteIpfs(self.registry, self.client)

    @cached_property
    def claims(self) -> RemoteClaims:
        return RemoteClaims(self.registry)

    @cached_property
    def audits(self) -> RemoteAudits:
        """Audits run on this machine (its home's sandbox settings) against what the server serves publicly."""
        return RemoteAudits(self.claims, self.home)

    @cached_property
    def reputation(self) -> RemoteReputation:
        return RemoteReputation(self.client, self.log, self.pins)

    @cached_property
    def log_signer(self) -> RemoteLogKey:
        """Only its `verifier`: the server's log key, as `aiprov log key` prints it."""
        return RemoteLogKey(self.log.verifier)

    def staking(self, private_key: str | None = None, key_source: str | None = None) -> StakeService:
        """Stake with this machine's chain settings and key (AIPROV_CHAIN_*); the server logs each mined step."""
        from aiprov.config import chain_config, load_settings
        from aiprov.remote.staking import RemoteLedger
        from aiprov.services.staking import StakeService

        config = chain_config(load_settings(self.home), private_key, key_source)
        return StakeService(config, RemoteLedger(self.client))

    def local(self, what: str) -> Container:
        """Never: a server's own container is on its machine. Raises NotOnServer naming `what`."""
        raise NotOnServer(
            f"{what} runs on the hub's own machine, not against a server",
            hint="run it where the hub's home is, without --server",
        )

    def close(self) -> None:
        self.client.close()
