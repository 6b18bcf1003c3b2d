"""`aiprov ipfs …`: Kubo-identical CIDs, CAR export and import, pinning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiprov.cli.common import container, handle_errors, out_console, print_json

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

ipfs_app = typer.Typer(
    name="ipfs",
    help="IPFS: the CIDs Kubo gives a model, CAR files any IPFS node imports, and pinning.",
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
