"""`aiprov keys new`, `aiprov sign` and `aiprov verify`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from aiprov.cli.common import container, handle_errors, out_console, print_json
from aiprov.errors import InvalidInput, VerificationError

if TYPE_CHECKING:
    from aiprov.ports import ChainReader
    from aiprov.services.signatures import SignResult
    from aiprov.services.verification import VerifyReport
    from aiprov.signing import PrivateKey

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]

keys_app = typer.Typer(name="keys", help="Author signing keys (ECDSA P-256, as OpenSSF model-signing uses).")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app)
    app.command()(sign)
    app.command()(verify)


@keys_app.command("new")
@handle_errors
def keys_new(
    out: Annotated[Path, typer.Option("--out", help="Private key file; the public key goes to OUT.pub.")] = Path(
        "aiprov-signing.pem"
    ),
    json: JsonOpt = False,
) -> None:
    """Make an ECDSA P-256 key pair (PEM). The private key is written with mode 0600 and never overwritten."""
    from aiprov import signing
    from aiprov.adapters.keys import write_private

    private_pem, public_pem = signing.generate_key_pair()
    public_path = out.with_name(out.name + ".pub")
    if public_path.exists():
        raise InvalidInput(f"{public_path} exists; refusing to overwrite a key")
    write_private(out, private_pem)
    public_path.write_bytes(public_pem)
    fingerprint = signing.key_fingerprint(signing.public_key_from_pem(public_pem))
    if json:
        print_json({"private_key": str(out), "public_key": str(public_path), "fingerprint": fingerprint})
        return
    out_console.print(f"private key {out} (keep it secret)\npublic key  {public_path}\nfingerprint {fingerprint}")


def sign_version(ctx: typer.Context, ref: str, key: PrivateKey, out: Path) -> SignResult:
    """Sign, record and log; write the bundle to `out`. Shared by `sign` and `push --sign`."""
    result = container(ctx).signatures.sign(ref, key)
    try:
        out.write_bytes(result.bundle)
    except OSError as e:
        raise InvalidInput(f"signed and recorded, but cannot write {out}: {e.strerror}") from e
    return result


@handle_errors
def sign(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to sign.")],
    key: Annotated[Path, typer.Option("--key", help="Private key PEM (from `aiprov keys new`).")],
    out: Annotated[Path | None, typer.Option("--out", help="Bundle file (default: NAME-vN.sig).")] = None,
    json: JsonOpt = False,
) -> None:
    """Sign a version as an OpenSSF model-signing bundle, record it and log it.

    The bundle verifies with `model_signing verify key --signature FILE --public_key KEY.pub MODEL_DIR`.
    """
    from aiprov import signing

    private_key = signing.load_private_key(key)
    if out is None:
        _, version = container(ctx).registry.show(ref)
        out = Path(f"{version.name}-v{version.number}.sig")
    result = sign_version(ctx, ref, private_key, out)
    v = result.version
    if json:
        print_json(
            {
                "name": v.full_name,
                "version": v.number,
                "digest": str(v.manifest.digest),
                "bundle": str(out),
                "key_fingerprint": result.key_fingerprint,
                "recorded": result.recorded,
            }
        )
        return
    state = "signed" if result.recorded else "already signed by this key; bundle rewritten"
    out_console.print(f"{v.ref} {state}: {out} (key {result.key_fingerprint[:16]}…)")


@handle_errors
def verify(
    ctx: typer.Context,
    ref: Annotated[
        str | None,
        typer.Argument(
            help="The version to verify; with --hf-cache, the folder to check (default: the Hugging Face cache).",
            metavar="REF|DIR",
        ),
    ] = None,
    path: Annotated[Path | None, typer.Option("--path", help="Check a local copy instead of stored bytes.")] = None,
    hf_cache: Annotated[
        bool,
        typer.Option(
            "--hf-cache",
            help="Check the snapshots of a Hugging Face cache (DIR: the cache, a models--OWNER--NAME folder or one "
            "snapshot) against the versions their commit ids name.",
        ),
    ] = False,
    bundle: Annotated[Path | None, typer.Option("--bundle", help="Also check this model-signing bundle…")] = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="…with this public key (PEM).")] = None,
    chain: Annotated[
        bool,
        typer.Option(
            "--chain", help="Also check against the checkpoints anchored on chain (AIPROV_CHAIN_RPC, _CONTRACT)."
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Check bytes, manifest digest, signatures, log inclusion and log consistency; exit 0 only if all pass."""
    from aiprov import signing

    reader = None
    if chain:
        from aiprov.cli.chain import chain_reader

        reader = chain_reader(ctx)
    if hf_cache:
        if path is not None or bundle is not None or public_key is not None:
            raise InvalidInput("--hf-cache checks the cache's own files: it takes no --path, --bundle or --public-key")
        _verify_hf_cache(ctx, Path(ref) if ref is not None else None, reader, json)
        return
    if ref is None:
        raise InvalidInput("name the version to verify", hint="e.g. `aiprov verify alice/iris@1`, or use --hf-cache")
    bundle_bytes = None
    if bundle is not None:
        try:
            bundle_bytes = bundle.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read {bundle}: {e.strerror}") from e
    key = signing.load_public_key(public_key) if public_key is not None else None
    report = container(ctx).verification.verify(ref, path=path, bundle=bundle_bytes, public_key=key, chain=reader)
    if json:
        print_json(report.to_json())
    else:
        _print_report(report)
    if not report.ok:
        failed = ", ".join(c.name for c in report.checks if not c.ok)
        raise VerificationError(f"verification failed: {failed}")


def _print_report(report: VerifyReport) -> None:
    v = report.version
    out_console.print(f"[bold]{escape(v.ref)}[/]", overflow="fold", soft_wrap=False)
    out_console.print(f"{v.manifest.digest}")
    # A grid, so a long detail wraps under itself and every line fits the terminal (80 columns included).
    table = Table.grid(padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for c in report.checks:
        mark = "[green]PASS[/]" if c.ok else "[bold red]FAIL[/]"
        table.add_row(f"  {mark}", escape(c.name), escape(c.detail))
    out_console.print(table, soft_wrap=False)


def _verify_hf_cache(ctx: typer.Context, location: Path | None, reader: ChainReader | None, json: bool) -> None:
    """`verify --hf-cache`: every snapshot at `location` (default: the Hugging Face cache), one report each."""
    from aiprov.adapters.hf_cache import default_cache, find_snapshots
    from aiprov.services.hf import verify_snapshots

    hub = container(ctx)
    checks = verify_snapshots(hub.registry, hub.verification, find_snapshots(location or default_cache()), reader)
    if json:
        print_json([c.to_json() for c in checks])
    else:
        for c in checks:
            out_console.print(f"snapshot {escape(str(c.snapshot.folder))}", overflow="fold", soft_wrap=False)
            if c.report is not None:
                _print_report(c.report)
            else:
                out_console.print(f"  [bold red]FAIL[/]  {escape(c.error or '')}", overflow="fold")
    failed = [c for c in checks if not c.ok]
    if failed:
        raise VerificationError(
            f"verification failed for {len(failed)} of {len(checks)} snapshot(s): "
            + ", ".join(f"{c.snapshot.model}@{c.snapshot.commit[:12]}" for c in failed)
        )
