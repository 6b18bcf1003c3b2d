"""Accounts of the API: `aiprov user add|ls` and `aiprov token add|revoke`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from aiprov.cli.common import handle_errors, local_container, out_console, print_json

if TYPE_CHECKING:
    from aiprov.services.accounts import NewToken

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (a stable shape scripts can rely on).")]
ScopeOpt = Annotated[
    list[str] | None,
    typer.Option("--scope", help="read, write or admin (repeatable). Default: read and write (+ admin for --admin)."),
]

user_app = typer.Typer(name="user", help="API users: each one owns the namespace of its name.", no_args_is_help=True)
token_app = typer.Typer(name="token", help="API tokens: stored hashed, shown once, revocable.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(user_app)
    app.add_typer(token_app)


def _print_new(made: NewToken, json: bool) -> None:
    if json:
        print_json(made.to_json())
        return
    out_console.print(f"token {made.token_id} for {made.user} ({', '.join(made.scopes)}):")
    out_console.print(made.token, soft_wrap=True)
    out_console.print("it is shown this once: keep it secret (send it as `Authorization: Bearer <token>`)")


@user_app.command("add")
@handle_errors
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name: also the namespace it may push to (NAME/*).")],
    admin: Annotated[bool, typer.Option("--admin", help="May write under every namespace and manage users.")] = False,
    scope: ScopeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add a user and print its first API token, once."""
    made = local_container(ctx).accounts.add_user(name, admin=admin, scopes=scope or [])
    _print_new(made, json)


@user_app.command("ls")
@handle_errors
def ls(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List users and their tokens (ids and scopes; a token itself is never stored)."""
    users = local_container(ctx).accounts.users()
    if json:
        print_json([u.to_json() for u in users])
        return
    if not users:
        out_console.print("no users yet (`aiprov user add NAME`)")
        return
    table = Table(box=None)
    for column in ("user", "admin", "token", "scopes", "created", "revoked"):
        table.add_column(column, no_wrap=True)
    for u in users:
        for i, t in enumerate(u.tokens or (None,)):
            table.add_row(
                u.name if i == 0 else "",
                ("yes" if u.admin else "") if i == 0 else "",
                t.token_id if t else "-",
                ",".join(t.scopes) if t else "",
                f"{t.created_at:%Y-%m-%d %H:%M}" if t else "",
                f"{t.revoked_at:%Y-%m-%d %H:%M}" if t and t.revoked_at else "",
            )
    out_console.print(table, soft_wrap=False)


@token_app.command("add")
@handle_errors
def token_add(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The user to make a token for.")],
    scope: ScopeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Make another token for a user (e.g. to rotate one) and print it, once."""
    made = local_container(ctx).accounts.add_token(user, scope or [])
    _print_new(made, json)


@token_app.command("revoke")
@handle_errors
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (`aiprov user ls`), not the token.")],
    json: JsonOpt = False,
) -> None:
    """Revoke a token: the server refuses it from the next request on."""
    record = local_container(ctx).accounts.revoke(token_id)
    if json:
        print_json(record.to_json())
        return
    out_console.print(f"token {record.token_id} of {record.user} revoked")
