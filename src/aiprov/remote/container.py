"""`RemoteContainer`: what `cli.common.container(ctx)` returns when a server is given."""

from __future__ import annotations

from functools import cached_property

from aiprov.remote.client import HubClient
from aiprov.remote.services import (
    RemoteEvaluations,
    RemoteLog,
    RemoteLogKey,
    RemoteRegistry,
    RemoteVerification,
    Unsupported,
)


class RemoteContainer(Unsupported):
    """The services of a hub at `url`, seen through its API with `token` (None: anonymous reads only).

    Commands that need more than the API offers (init, sign, eval, datasets, tile export) raise InvalidInput.
    """

    what = "the command's"

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.client = HubClient(url, token)

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
    def verification(self) -> RemoteVerification:
        return RemoteVerification(self.registry)

    @cached_property
    def log_signer(self) -> RemoteLogKey:
        """Only its `verifier`: the server's log key, as `aiprov log key` prints it."""
        return RemoteLogKey(self.log.verifier)

    def close(self) -> None:
        self.client.close()
