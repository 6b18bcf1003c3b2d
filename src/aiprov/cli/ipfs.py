"""`aiprov ipfs …`: Kubo-identical CIDs, CAR export and import, pinning, fetching from trustless gateways."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from aiprov.cli.common import container, err_console, handle_errors, out_console, print_json

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (a stable shape scripts can rely on).")]
VersionOpt = Annotated[
    int,
    typer.Option(
        "--cid-version",
        min=0,
        max=1,
        help="0: as `ipfs add` (Kubo's default, Qm…); 1: as `ipfs add --cid-version=1` (raw leaves, bafy…).",
    ),
]

if TYPE_CHECKING:
    from aiprov.adapters.gateways import Skipped

ipfs_app = typer.Typer(
    name="ipfs",
    help="IPFS: the CIDs Kubo gives a model, CAR files any IPFS node imports, pinning, and fetching from gateways.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(ipfs_app)


@ipfs_app.command()
@handle_errors
def cid(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A local file or directory, or a registered REF.")],
    cid_version: VersionOpt = 0,
    json: JsonOpt = False,
) -> None:
    """Print the CID `ipfs add [-r]` gives a local model (nothing stored) or a registered version, and its files'."""
    from aiprov.services.ipfs import local_cids

    path = Path(target)
    report = local_cids(path, cid_version) if path.exists() else container(ctx).ipfs.of_ref(target, cid_version)
    if json:
        print_json(report.to_json())
        return
    out_console.print(report.cid or "(no CID recorded)")
    if len(report.files) > 1 or not path.is_file():
        for p, file_cid in report.files:
            out_console.print(f"  {file_cid}  {p}", soft_wrap=True)


@ipfs_app.command()
@handle_errors
def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to export.")],
    out: Annotated[Path, typer.Argument(help="The CAR file to write (replaced atomically).")],
    cid_version: VersionOpt = 0,
    json: JsonOpt = False,
) -> None:
    """Write the version's whole DAG as a CARv1 (`ipfs dag import` takes it), the directory or file as root."""
    result = container(ctx).ipfs.export(ref, out, cid_version)
    if json:
        print_json(result.to_json())
        return
    out_console.print(f"{result.ref} -> {out}  root {result.root}  ({result.blocks} blocks, {result.size} bytes)")


@ipfs_app.command("import")
@handle_errors
def import_(
    ctx: typer.Context,
    car: Annotated[Path, typer.Argument(help="A CARv1 holding one UnixFS file or directory.")],
    name: Annotated[str, typer.Option("--name", help="OWNER/NAME to register it under.")],
    file_name: Annotated[
        str | None, typer.Option("--file-name", help="Name of the file when the CAR holds one file (default: CID).")
    ] = None,
    desc: Annotated[str | None, typer.Option("--desc", help="Description.")] = None,
    json: JsonOpt = False,
) -> None:
    """Check every block of a CAR, rebuild its files, and register them exactly like `push` (scan included)."""
    from aiprov.services.registry import PushRequest

    result = container(ctx).ipfs.import_car(car, PushRequest(name=name, description=desc), file_name)
    if json:
        print_json(result.to_json())
        return
    v = result.push.version
    state = "already had" if result.push.deduplicated else "registered"
    out_console.print(f"{v.full_name} {state} version [bold]{v.number}[/]  {v.manifest.digest}")
    out_console.print(f"CAR root {result.car_root} ({result.blocks} blocks, every one checked)")
    if not result.same_cid:
        out_console.print("note: aiprov's CIDs differ from the CAR's (another chunker or layout); `show` prints them")


@ipfs_app.command()
@handle_errors
def pin(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to pin.")],
    cid_version: VersionOpt = 0,
    json: JsonOpt = False,
) -> None:
    """Pin a version on the Kubo node at AIPROV_IPFS_API, or the pinning service at AIPROV_IPFS_PINNING_URL."""
    result = container(ctx).ipfs.pin(ref, cid_version)
    if json:
        print_json(result.to_json())
        return
    out_console.print(f"{result.ref} pinned as {result.cid} via {result.via} at {result.endpoint}")


GatewayOpt = Annotated[
    list[str],
    typer.Option(
        "--gateway",
        "-g",
        help="A trustless gateway URL (repeatable, tried in order; one that lies or stalls is skipped).",
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=0.1, help="Skip a gateway that sends no block for this many seconds."),
]
DEFAULT_TIMEOUT_S = 30.0
"""The default of --timeout (`adapters.gateways` is imported only by the commands that fetch)."""


def skip_notice(as_json: bool) -> Callable[[Skipped], None] | None:
    """One `warning:` line on stderr for each gateway given up on; none under --json (its `skipped` says it)."""
    if as_json:
        return None

    def notice(skipped: Skipped) -> None:
        err_console.print(f"[yellow]warning:[/] {escape(str(skipped))}", soft_wrap=True)

    return notice


@ipfs_app.command()
@handle_errors
def get(
    cid: Annotated[str, typer.Argument(help="The CID of a UnixFS file or directory (CIDv0 Qm… or CIDv1 bafy…).")],
    dest: Annotated[Path, typer.Argument(help="Directory to write the files into (a file root: DEST/CID).")],
    gateway: GatewayOpt,
    file_name: Annotated[
        str | None, typer.Option("--file-name", help="Name of the file when the CID is a file (default: the CID).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
    json: JsonOpt = False,
) -> None:
    """Fetch a file or directory from IPFS trustless gateways, every block checked against its CID as it arrives.

    Nothing appears in DEST unless every file was rebuilt whole; no aiprov home is needed.
    """
    from aiprov.core.unixfs import Cid
    from aiprov.services.ipfs_fetch import fetch

    root = Cid.parse(cid)
    notice = skip_notice(json)
    result = fetch(root, dest, gateway, file_name=file_name, force=force, timeout_s=timeout, on_skip=notice)
    if json:
        print_json(result.to_json())
        return
    n = len(result.manifest.entries)
    out_console.print(f"{result.root} ({n} file(s), {result.blocks} blocks, every one checked) -> {dest}")


def pull_from_gateways(
    ctx: typer.Context,
    ref: str,
    dest: Path,
    gateways: list[str],
    bundle: Path | None,
    public_key: Path | None,
    cid_version: int,
    force: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """`aiprov pull REF DEST --from-ipfs URL [--bundle B --public-key K]`: see `pull`.

    With a bundle and a CID for REF, no hub is asked anything: the signature is the proof. Otherwise the
    version's manifest and CID come from the hub, whose rows must agree with its log.
    """
    from aiprov.core.unixfs import Cid
    from aiprov.errors import InvalidInput
    from aiprov.services.ipfs_fetch import Expected, fetch, pull_from_ipfs

    if not gateways:
        raise InvalidInput("--bundle checks a model fetched with --from-ipfs", hint="give --from-ipfs URL")
    attested = None
    if bundle is not None:
        from aiprov import signing
        from aiprov.core.attestation import attested_model

        if public_key is None:
            raise InvalidInput("--bundle needs --public-key (the signer's key)")
        try:
            data = bundle.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read {bundle}: {e.strerror}") from e
        attested = attested_model(signing.open_bundle(data, signing.load_public_key(public_key)))
    elif public_key is not None:
        raise InvalidInput("--public-key checks a --bundle", hint="give --bundle FILE")
    if attested is not None and _is_cid(ref):
        result = fetch(
            Cid.parse(ref),
            dest,
            gateways,
            expected=Expected(attested=attested),
            force=force,
            timeout_s=timeout,
            on_skip=skip_notice(as_json),
        )
    else:
        c = container(ctx)
        c.verification.rows(ref).refuse("refused to pull")
        _, record = c.registry.show(ref)
        result = pull_from_ipfs(
            record,
            dest,
            gateways,
            cid_version=cid_version,
            force=force,
            timeout_s=timeout,
            on_skip=skip_notice(as_json),
            attested=attested,
        )
    if as_json:
        print_json(result.to_json())
        return
    what = result.ref or result.root
    out_console.print(
        f"{what} ({len(result.manifest.entries)} files from IPFS, {result.blocks} blocks checked, "
        f"files match the {result.proof}) -> {dest}"
    )


def _is_cid(text: str) -> bool:
    from aiprov.core.unixfs import Cid
    from aiprov.errors import InvalidInput

    try:
        Cid.parse(text)
    except InvalidInput:
        return False
    return True
