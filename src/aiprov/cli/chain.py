"""`aiprov chain deploy|register|status` and `aiprov anchor`: the log's witness on an EVM chain."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aiprov.cli.common import CliState, handle_errors, local_container, out_console, print_json
from aiprov.errors import InvalidInput

if TYPE_CHECKING:
    from aiprov.ports import ChainReader
    from aiprov.services.anchoring import AnchorService, RegisterResult

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="File holding the hex private key that signs (default: AIPROV_CHAIN_PRIVATE_KEY)."),
]

chain_app = typer.Typer(
    name="chain",
    help="The AiprovRegistry contract on an EVM chain (AIPROV_CHAIN_RPC, AIPROV_CHAIN_CONTRACT).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(chain_app)
    app.command()(anchor)


def key_from(key_file: Path | None) -> tuple[str | None, str | None]:
    """(the hex key in `key_file`, where it came from); (None, None) without a file (AIPROV_CHAIN_PRIVATE_KEY)."""
    if key_file is None:
        return None, None
    try:
        return key_file.read_text(), f"the key file {key_file}"
    except OSError as e:
        raise InvalidInput(f"cannot read the chain key file {key_file}: {e.strerror}") from e


def anchoring(ctx: typer.Context, key_file: Path | None) -> AnchorService:
    """The anchoring service, signing with the key in `key_file` when given."""
    return local_container(ctx).anchoring(*key_from(key_file))


def chain_reader(ctx: typer.Context) -> ChainReader:
    """What `verify --chain` reads: the hub's registry contract (recorded or configured).

    Against a server (`--server`), the one AIPROV_CHAIN_CONTRACT names: the client reads the chain itself, never
    through the hub.
    """
    state = ctx.find_root().obj
    if isinstance(state, CliState) and state.server is not None:
        from aiprov.config import chain_config, load_settings
        from aiprov.services.anchoring import read_chain

        return read_chain(chain_config(load_settings(state.home)))
    return anchoring(ctx, None).reader()


@chain_app.command()
@handle_errors
def deploy(ctx: typer.Context, key_file: KeyFileOpt = None, json: JsonOpt = False) -> None:
    """Deploy the registry contract, the stake token and the staking contract (default parameters, docs/staking.md).

    The signer becomes the registry's log operator and the token's admin and minter.
    """
    s = local_container(ctx).staking(*key_from(key_file)).deploy()
    d = anchoring(ctx, key_file).deploy(also=s.record())
    if json:
        print_json({**d.to_json(), **s.to_json()})
        return
    out_console.print(f"registry deployed at [bold]{d.address}[/] on chain {d.chain_id} (tx {d.tx}, block {d.block})")
    out_console.print(f"stake token at [bold]{s.token}[/], staking contract at [bold]{s.staking}[/]")
    out_console.print(f"use them with: export AIPROV_CHAIN_CONTRACT={d.address} AIPROV_STAKE_CONTRACT={s.staking}")


@chain_app.command()
@handle_errors
def status(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Whether the node answers, which chain and block it is at, the registry, and how far the log is anchored.

    Reads only (no key needed); exits non-zero when the node does not answer, so scripts can wait for it.
    """
    s = anchoring(ctx, None).status()
    if json:
        print_json(s.to_json())
        return
    out_console.print(f"node {s.rpc}: chain {s.chain_id}, block {s.block}")
    if s.contract is None:
        out_console.print("registry: none yet (run `aiprov chain deploy`, or set AIPROV_CHAIN_CONTRACT)")
        return
    where = "deployed by this hub" if s.recorded else "configured (AIPROV_CHAIN_CONTRACT)"
    out_console.print(f"registry {s.contract}, {where}")
    anchored = f"anchored up to size {s.anchored_size}" if s.anchored_size else "not anchored yet"
    out_console.print(f"log {s.origin}: size {s.log_size}, {anchored}")


def print_registration(r: RegisterResult) -> None:
    reg = r.registration
    state = f"registered on chain {r.chain_id} (tx {r.tx})" if r.sent else "already registered by this signer"
    out_console.print(f"{r.ref} {r.digest} {state}")
    out_console.print(f"owner {reg.owner}, uri {reg.uri}, block {reg.block}")


@chain_app.command("register")
@handle_errors
def register_(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version whose digest to register.")],
    uri: Annotated[
        str | None, typer.Option("--uri", help="Where to fetch it (default: ipfs://CID if known, else aiprov:REF).")
    ] = None,
    key_file: KeyFileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Register a version's digest on chain, owned by the signer's address; nobody else can take it over."""
    result = anchoring(ctx, key_file).register(ref, uri)
    if json:
        print_json(result.to_json())
        return
    print_registration(result)


@handle_errors
def anchor(ctx: typer.Context, key_file: KeyFileOpt = None, json: JsonOpt = False) -> None:
    """Put the log's latest signed checkpoint on chain, in one transaction whatever the number of events.

    Sends nothing when only anchor records were logged since the last anchor.
    """
    result = anchoring(ctx, key_file).anchor()
    if json:
        print_json(result.to_json())
        return
    if not result.sent:
        out_console.print("nothing to anchor: only anchor records were logged since the last anchor (no transaction)")
        return
    out_console.print(
        f"anchored {result.origin} size {result.tree_size} root {result.root.hex()[:16]}… on chain "
        f"{result.chain_id} (tx {result.tx}, block {result.block}, {result.gas_used} gas)"
    )
