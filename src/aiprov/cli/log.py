"""`aiprov log …`: the transparency log's checkpoint, key, entries, proofs and tiles."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from aiprov.cli.common import container, handle_errors, local_container, out_console, print_json

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (hashes are lowercase hex).")]

log_app = typer.Typer(
    name="log",
    help="The transparency log: every event is a leaf of an RFC 9162 Merkle tree with signed checkpoints.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(log_app)


@log_app.command()
@handle_errors
def checkpoint(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Print the latest signed checkpoint (a C2SP signed note), exactly as signed."""
    signed = container(ctx).log.latest()
    if json:
        from aiprov.core.checkpoint import Checkpoint
        from aiprov.core.note import Note

        # Parsed from the note itself, as a server's is (printed as received: `verify` is what checks it).
        cp = Checkpoint.parse(Note.parse(signed.note).text)
        print_json({"origin": cp.origin, "size": cp.size, "root": cp.root_hash.hex(), "note": signed.note})
        return
    sys.stdout.write(signed.note)


@log_app.command()
@handle_errors
def key(ctx: typer.Context, json: JsonOpt = False) -> None:
    """Print the log's verifier key in note format (name+hexid+base64)."""
    verifier = container(ctx).log_signer.verifier
    if json:
        print_json(
            {
                "key": str(verifier),
                "name": verifier.name,
                "key_id": f"{verifier.key_id:08x}",
                "public_key": verifier.public_key.hex(),
            }
        )
        return
    typer.echo(str(verifier))


@log_app.command()
@handle_errors
def entry(
    ctx: typer.Context,
    index: Annotated[int, typer.Argument(min=0, help="Leaf index, from 0.")],
    json: JsonOpt = False,
) -> None:
    """Print one log entry: the event, and its RFC 9162 leaf hash."""
    data, leaf, _ = container(ctx).log.entry(index)
    if json:
        print_json({"index": index, "leaf_hash": leaf.hex(), "event": jsonlib.loads(data)})
        return
    out_console.print(f"entry {index}  leaf {leaf.hex()}")
    sys.stdout.write(data.decode() + "\n")


@log_app.command()
@handle_errors
def proof(
    ctx: typer.Context,
    index: Annotated[int, typer.Option("--index", min=0, help="Leaf index to prove.")],
    size: Annotated[int | None, typer.Option("--size", min=1, help="Tree size (default: latest checkpoint).")] = None,
    json: JsonOpt = False,
) -> None:
    """Print an inclusion proof of entry INDEX in the tree of SIZE entries."""
    p = container(ctx).log.inclusion(index, size)
    if json:
        print_json(p.to_json())
        return
    out_console.print(f"entry {p.index} in tree of size {p.tree_size}, root {p.root.hex()}")
    out_console.print(f"leaf {p.leaf_hash.hex()}")
    for h in p.hashes:
        out_console.print(f"  {h.hex()}")


@log_app.command()
@handle_errors
def consistency(
    ctx: typer.Context,
    size1: Annotated[int, typer.Option("--from", min=1, help="The older tree size.")],
    size2: Annotated[int | None, typer.Option("--to", min=1, help="The newer size (default: latest).")] = None,
    json: JsonOpt = False,
) -> None:
    """Print a consistency proof: the tree of FROM entries is a prefix of the tree of TO entries."""
    p = container(ctx).log.consistency(size1, size2)
    if json:
        print_json(p.to_json())
        return
    out_console.print(f"size {p.size1} root {p.root1.hex()}")
    out_console.print(f"size {p.size2} root {p.root2.hex()}")
    for h in p.hashes:
        out_console.print(f"  {h.hex()}")


@log_app.command("export-tiles")
@handle_errors
def export_tiles(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write checkpoint and tile/… (C2SP tlog-tiles).")],
    json: JsonOpt = False,
) -> None:
    """Write the log as C2SP tlog-tiles, for any tiles client or a static web server or bucket."""
    signed, written = local_container(ctx).log.export_tiles(directory)
    if json:
        print_json({"directory": str(directory), "size": signed.checkpoint.size, "files_written": written})
        return
    out_console.print(f"tree of size {signed.checkpoint.size} exported to {directory} ({written} file(s) written)")
