"""Pinning a model on IPFS: a Kubo node's RPC API, or a remote IPFS Pinning Service API endpoint (httpx).

- Kubo RPC: `POST /api/v0/dag/import?pin-roots=true` with the CAR as a multipart file; the node answers one
  JSON object per root, `{"Root": {"Cid": {"/": CID}, "PinErrorMsg": ""}}`.
- Pinning Service API: `POST /pins` `{"cid", "name"}` with a bearer token answers a PinStatus
  (`{"requestid", "status": queued|pinning|pinned|failed, …}`); `GET /pins/{requestid}` is polled until the
  pin settles. The service fetches the blocks itself (e.g. from this hub's trustless gateway).

Connection errors and 5xx answers are retried with exponential backoff; a refusal (401/403, other 4xx) is not.
Everything httpx raises becomes a BackendError with one line that says what to do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from aiprov.errors import BackendError

RETRIES = 4
BACKOFF_S = 0.5


@dataclass(frozen=True, slots=True)
class PinOutcome:
    """What the pinning endpoint reported."""

    via: str
    endpoint: str
    status: str
    request_id: str | None = None


def safe_url(url: str) -> str:
    """The URL without credentials or query, for messages and events."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Http:
    def __init__(self, base: str, what: str, *, backoff_s: float, sleep: Callable[[float], None]) -> None:
        self.base = base.rstrip("/")
        self.what = what
        self.backoff_s = backoff_s
        self.sleep = sleep

    def request(
        self, client: httpx.Client, method: str, path: str, *, upload: Path | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send, retrying connection errors and 5xx; raise BackendError for a refusal or when retries run out.

        `upload` is sent as the multipart file part `file` (a CAR), streamed from disk and reopened on each attempt.
        """
        where = safe_url(self.base + path)
        last = ""
        for attempt in range(RETRIES):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                if upload is None:
                    response = client.request(method, self.base + path, **kwargs)
                else:
                    with open(upload, "rb") as f:
                        files = {"file": (upload.name, f, "application/vnd.ipld.car")}
                        response = client.request(method, self.base + path, files=files, **kwargs)
            except httpx.TransportError as e:
                last = f"cannot reach {where}: {type(e).__name__}"
                continue
            if response.status_code >= 500:
                last = f"{where} answered {response.status_code}: {_reason(response)}"
                continue
            if response.status_code in (401, 403):
                raise BackendError(
                    f"{self.what} at {where} refused the request ({response.status_code}: {_reason(response)})",
                    hint="check the token (AIPROV_IPFS_PINNING_TOKEN) and its permissions",
                )
            if response.status_code >= 400:
                raise BackendError(f"{self.what} at {where} refused: {response.status_code} {_reason(response)}")
            return response
        raise BackendError(
            f"{self.what} unavailable after {RETRIES} attempts: {last}", hint="is the endpoint up? try again later"
        )


def _reason(response: httpx.Response) -> str:
    """The error a Kubo or pinning-service response carries, on one line."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Pinning Service API: {"error": {"reason", "details"}}
            return f"{error.get('reason', '')} {error.get('details', '')}".strip()
        if "Message" in body:  # Kubo RPC: {"Message", "Code", "Type"}
            return str(body["Message"])
    return str(body)[:200]


class KuboPinner:
    """Import a CAR into a Kubo node and pin its root (`/api/v0/dag/import?pin-roots=true`)."""

    def __init__(
        self, api_url: str, *, backoff_s: float = BACKOFF_S, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.http = _Http(api_url, "the Kubo RPC API", backoff_s=backoff_s, sleep=sleep)

    def pin_car(self, car: Path, root: str) -> PinOutcome:
        """Raises BackendError if the node is down, refuses, or did not pin `root`."""
        with httpx.Client(timeout=httpx.Timeout(30.0, read=600.0)) as client:
            response = self.http.request(client, "POST", "/api/v0/dag/import", params={"pin-roots": "true"}, upload=car)
        pinned = {}
        for line in response.text.splitlines():
            if line.strip():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    raise BackendError(f"the Kubo RPC API answered something that is not JSON: {line[:100]}") from None
                if isinstance(entry, dict) and isinstance(entry.get("Root"), dict):
                    r = entry["Root"]
                    pinned[str((r.get("Cid") or {}).get("/"))] = str(r.get("PinErrorMsg") or "")
        where = safe_url(self.http.base)
        if root not in pinned:
            raise BackendError(f"the Kubo node at {where} did not report pinning {root}")
        if pinned[root]:
            raise BackendError(f"the Kubo node at {where} could not pin {root}: {pinned[root]}")
        return PinOutcome("kubo", where, "pinned")


class PinningService:
    """An IPFS Pinning Service API endpoint (`POST /pins`, then `GET /pins/{requestid}` until it settles)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        backoff_s: float = BACKOFF_S,
        poll_s: float = 1.0,
        timeout_s: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = _Http(url, "the pinning service", backoff_s=backoff_s, sleep=sleep)
        self.token = token
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.sleep = sleep

    def pin(self, cid: str, name: str, *, clock: Callable[[], float] = time.monotonic) -> PinOutcome:
        """Ask the service to pin `cid` and wait until it is pinned. Raises BackendError (refused, failed, down)."""
        where = safe_url(self.http.base)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=30.0, headers=headers) as client:
            status = self._status(self.http.request(client, "POST", "/pins", json={"cid": cid, "name": name}))
            deadline = clock() + self.timeout_s
            while status["status"] in ("queued", "pinning"):
                if clock() > deadline:
                    raise BackendError(
                        f"the pinning service at {where} has not pinned {cid} after {self.timeout_s:.0f} s "
                        f"(status {status['status']}, request {status['requestid']})",
                        hint="it may still be fetching the blocks: is this hub's gateway reachable from it?",
                    )
                self.sleep(self.poll_s)
                status = self._status(self.http.request(client, "GET", f"/pins/{status['requestid']}"))
        if status["status"] != "pinned":
            raise BackendError(f"the pinning service at {where} failed to pin {cid} (request {status['requestid']})")
        return PinOutcome("pinning-service", where, "pinned", str(status["requestid"]))

    def _status(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("requestid"), str) or "status" not in body:
            raise BackendError(f"the pinning service at {safe_url(self.http.base)} answered something not a PinStatus")
        return body
