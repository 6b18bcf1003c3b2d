"""What routes depend on: the container, the caller and the checks on what the caller may do.

Routes declare `container: ContainerDep` and `caller: CallerDep`. Every router included by `create_app` also runs
`get_caller`, so a bad token is a 401 on every route (reads too), and so is a request without a token when
anonymous reads are switched off (`AIPROV_ANONYMOUS_READS=false`). A write route then calls `require_write` (or
`require_admin`) and `check_namespace`, which return the caller's user name, and passes it to the service as
`actor=`: the services are the container's own, shared by every request, and record whoever the route names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from aiprov.config import Container
from aiprov.errors import Forbidden, Unauthorized

READ, WRITE, ADMIN = "read", "write", "admin"
SCOPES = (READ, WRITE, ADMIN)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request: a user with a token's scopes, or anonymous (`name` None, no scopes)."""

    name: str | None
    scopes: frozenset[str] = frozenset()
    admin: bool = False

    @property
    def anonymous(self) -> bool:
        return self.name is None


ANONYMOUS = Caller(None)


async def get_container(request: Request) -> Container:
    """The app's container (`app.state.container`, set by `create_app`).

    Async (it does no I/O): a sync dependency would cost every request a hop through the thread pool.
    """
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, None without one. Raises Unauthorized otherwise."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be `Bearer <token>`")
    return token.strip()


# Documents the optional bearer token in OpenAPI (the "Authorize" button of /docs); `get_caller` parses the header
# itself, so a malformed one is a 401 rather than ignored.
_bearer_doc = HTTPBearer(auto_error=False, description="An API token from `aiprov user add` (optional for reads).")


async def get_caller(
    request: Request,
    container: ContainerDep,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_doc)] = None,
) -> Caller:
    """Authenticate the request; cached per request by FastAPI, so routers and routes may both depend on it.

    Raises Unauthorized for an unknown, malformed or revoked token, and for no token when anonymous reads are off.
    """
    return await authenticate(request, container)


async def authenticate(request: Request, container: Container) -> Caller:
    """Who sent `request`, as `get_caller` says; for routes that authenticate themselves (the inference hot path).

    Raises Unauthorized for an unknown, malformed or revoked token, and for no token when anonymous reads are off.
    """
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        if not container.settings.anonymous_reads:
            raise Unauthorized("this hub needs an API token to read", hint="send `Authorization: Bearer <token>`")
        return ANONYMOUS
    # A token checked within `token_cache_s` costs a hash and a dict lookup on the loop; otherwise the database
    # lookup runs off the event loop.
    accounts = container.accounts
    principal = accounts.cached(token)
    if principal is None:
        principal = await run_in_threadpool(accounts.authenticate, token)
    return Caller(principal.user, frozenset(principal.scopes), principal.admin)


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_write(caller: Caller, doing: str = "writing") -> str:
    """Return the caller's user name if it may write. Raises Unauthorized (anonymous) or Forbidden (no scope).

    `doing` names the act in the messages: predictions need the write scope too.
    """
    if caller.name is None:
        raise Unauthorized(f"{doing} needs an API token", hint="send `Authorization: Bearer <token>`")
    if WRITE not in caller.scopes and not caller.admin:
        raise Forbidden(f"the token of {caller.name} has no write scope, which {doing} needs")
    return caller.name


def require_admin(caller: Caller) -> str:
    """Return the caller's user name if it is an admin. Raises Unauthorized (anonymous) or Forbidden."""
    if caller.name is None:
        raise Unauthorized("this needs an admin's API token", hint="send `Authorization: Bearer <token>`")
    if not caller.admin:
        raise Forbidden(f"{caller.name} is not an admin (or the token lacks the admin scope)")
    return caller.name


def check_namespace(caller: Caller, owner: str) -> str:
    """Return the caller's name if it may write under `owner/*`: the owner itself, or an admin.

    Implies `require_write`. Raises Unauthorized or Forbidden.
    """
    name = require_write(caller)
    if name != owner and not caller.admin:
        raise Forbidden(f"{name} may not write under {owner}/", hint="only the owner or an admin may")
    return name
