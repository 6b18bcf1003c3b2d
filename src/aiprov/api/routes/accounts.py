"""Accounts over HTTP: who am I, and (admins) users and tokens, like `aiprov user …` and `aiprov token …`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from aiprov.api.deps import CallerDep, ContainerDep, require_admin, require_write
from aiprov.api.limits import JsonRoute
from aiprov.api.schemas import CallerOut, NewTokenOut, TokenIn, TokenOut, UserIn, UserOut

router = APIRouter(tags=["accounts"], route_class=JsonRoute)

UserName = Annotated[str, Path(min_length=1, max_length=64)]
TokenId = Annotated[str, Path(min_length=1, max_length=16)]


@router.get("/user", response_model=CallerOut, summary="Who am I")
def whoami(caller: CallerDep) -> dict[str, Any]:
    """The caller as the server sees it: user name (null when anonymous), scopes, admin."""
    return {"user": caller.name, "scopes": sorted(caller.scopes), "admin": caller.admin}


@router.get("/users", response_model=list[UserOut], summary="List users (admin)")
def list_users(container: ContainerDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Every user with its token ids and scopes (never a token itself)."""
    require_admin(caller)
    return [u.to_json() for u in container.accounts.users()]


@router.post("/users", response_model=NewTokenOut, status_code=status.HTTP_201_CREATED, summary="Add a user (admin)")
def add_user(container: ContainerDep, caller: CallerDep, body: UserIn) -> dict[str, Any]:
    """Create a user and its first token, returned this once."""
    actor = require_admin(caller)
    return container.accounts.add_user(body.name, admin=body.admin, scopes=body.scopes, actor=actor).to_json()


@router.post(
    "/users/{user}/tokens", response_model=NewTokenOut, status_code=status.HTTP_201_CREATED, summary="Add a token"
)
def add_token(container: ContainerDep, caller: CallerDep, user: UserName, body: TokenIn) -> dict[str, Any]:
    """Make another token for `user` (yourself, or anyone as an admin), returned this once."""
    if (actor := require_write(caller)) != user:
        require_admin(caller)
    return container.accounts.add_token(user, body.scopes, actor=actor).to_json()


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke a token")
def revoke_token(container: ContainerDep, caller: CallerDep, token_id: TokenId) -> dict[str, Any]:
    """Revoke one of your tokens (an admin: anyone's); it stops working on the next request."""
    name = require_write(caller)
    of_user = None if caller.admin else name
    return container.accounts.revoke(token_id, of_user=of_user, actor=name).to_json()
