"""The HTTP side of the remote CLI: an httpx client whose failures are aiprov errors.

A problem body (RFC 9457, as the API sends) becomes the `AiprovError` subclass with the same title (else the one
for its status), carrying the server's detail, so the CLI prints the same line and exits with the same code as it
would against a local home. A network failure is a BackendError.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aiprov import errors
from aiprov.errors import AiprovError, BackendError, InvalidInput, UnsafeModelError

if TYPE_CHECKING:
    import httpx

API = "/api/v1"
TIMEOUT_S = 60.0


def _subclasses(cls: type[AiprovError]) -> Iterator[type[AiprovError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


_BY_STATUS: dict[int, type[AiprovError]] = {
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.TooLarge,
    422: errors.InvalidInput,
}


def error_from_problem(status: int, body: Any, url: str) -> AiprovError:
    """The aiprov error a problem response stands for; its message is the server's detail (hint included)."""
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or f"the server answered {status} to {url}")
    classes = list(_subclasses(AiprovError))
    by_code = {cls.code: cls for cls in classes}
    by_title = {cls.title: cls for cls in classes}
    cls = by_code.get(str(body.get("code"))) or by_title.get(str(body.get("title")))
    cls = cls or _BY_STATUS.get(status, BackendError)
    if cls is errors.MissingExtra:  # the server lacks an extra: its detail says which, and it is the server's fault
        return BackendError(detail)
    if cls is UnsafeModelError:
        findings = body.get("findings")
        return UnsafeModelError(detail, findings if isinstance(findings, list) else [])
    return cls(detail)


def connect(url: str, headers: dict[str, str], timeout_s: float) -> httpx.Client:
    """The HTTP client of every request to the server at `url`: the one place a connection is made.

    The test suite replaces it to reach an app in its own process (`fastapi.testclient.TestClient`, itself an
    `httpx.Client`), so the remote commands run unchanged without a socket.
    """
    import httpx

    return httpx.Client(
        base_url=url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0), follow_redirects=False
    )


class HubClient:
    """A connection to an aiprov server at `url`, sending `token` (when given) as a bearer token."""

    def __init__(self, url: str, token: str | None, *, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = connect(self.url, headers, timeout_s)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kw: Any) -> httpx.Response:
        """Send a request under /api/v1; return the response if it succeeded (2xx, or a status in `ok`).

        Raises the AiprovError of a problem response, BackendError for a network failure.
        """
        import httpx

        if self.http.is_closed:  # httpx would raise a RuntimeError: a call after `Hub.close()` is the caller's slip
            raise InvalidInput(f"the connection to {self.url} is closed")
        try:
            response = self.http.request(method, API + path, **kw)
        except httpx.HTTPError as e:
            raise BackendError(f"cannot reach the aiprov server at {self.url}: {e}") from e
        self.check(response, ok)
        return response

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON body of a successful request. Raises as `request`, BackendError for a body that is not JSON."""
        response = self.request(method, path, **kw)
        try:
            return response.json()
        except ValueError as e:
            raise BackendError(f"the server at {self.url} sent no JSON for {path}") from e

    @contextmanager
    def stream(
        self, path: str, headers: dict[str, str] | None = None, *, prefix: str = API
    ) -> Iterator[httpx.Response]:
        """A streamed GET under `prefix` (/api/v1; "" for the IPFS gateway), read with `iter_bytes`.

        Raises as `request`; a cut is a BackendError.
        """
        import httpx

        try:
            with self.http.stream("GET", prefix + path, headers=headers) as response:
                if response.status_code >= 300:
                    response.read()
                self.check(response, ())
                yield response
        except httpx.HTTPError as e:
            raise BackendError(f"download from {self.url}{prefix}{path} failed: {e}") from e

    def check(self, response: httpx.Response, ok: tuple[int, ...]) -> None:
        """Raise the AiprovError of a failed response (not 2xx and not in `ok`)."""
        if 200 <= response.status_code < 300 or response.status_code in ok:
            return
        try:
            body = json.loads(response.content) if response.content else None
        except ValueError:
            body = None
        raise error_from_problem(response.status_code, body, str(response.url))
