"""Model commands: push, hash, ls, show, pull, alias, usage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from aiprov.cli.common import container, err_console, handle_errors, out_console, print_json, progress_bar
from aiprov.cli.ipfs import DEFAULT_TIMEOUT_S
from aiprov.core.text import printable

if TYPE_CHECKING:
    from aiprov.records import VersionRecord

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (a stable shape scripts can rely on).")]


def register(app: typer.Typer) -> None:
    for command in (push, hash_, ls, show, pull, alias, usage):
        app.command(name=command.__name__.rstrip("_"))(command)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@handle_errors
def push(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The model: one file, or a directory of files.")],
    name: Annotated[str, typer.Option("--name", "-n", help="OWNER/NAME to register it under.")],
    desc: Annotated[str | None, typer.Option("--desc", help="Description of the model.")] = None,
    license: Annotated[str | None, typer.Option("--license", help="Licence, e.g. an SPDX id.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="Tag (repeatable).")] = None,
    parent: Annotated[
        list[str] | None, typer.Option("--parent", help="Parent version: REF or sha256 digest (repeatable).")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Training data: sha256 digest or name (repeatable).")
    ] = None,
    code_rev: Annotated[str | None, typer.Option("--code-rev", help="Code revision that produced it.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Hyper-parameter KEY=VALUE (repeatable).")] = None,
    sign: Annotated[
        Path | None, typer.Option("--sign", help="Also sign it with this private key (see `aiprov sign`).")
    ] = None,
    on_chain: Annotated[
        bool, typer.Option("--on-chain", help="Also register its digest on chain (see `aiprov chain register`).")
    ] = False,
    chain_key_file: Annotated[
        Path | None, typer.Option("--chain-key-file", help="Chain signer key for --on-chain (see --key-file).")
    ] = None,
    claims_from_card: Annotated[
        bool,
        typer.Option(
            "--claims-from-card",
            help="Also claim the results of README.md's model-index (as `aiprov claim`; auditors may check them).",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Fingerprint a model, store its bytes once, and register it as a new version.

    The same bytes pushed again under the same name return the existing version (nothing new is stored).
    """
    from aiprov.services.registry import PushRequest, parse_params

    request = PushRequest(
        name=name,
        description=desc,
        license=license,
        tags=tag or [],
        parents=parent or [],
        datasets=dataset or [],
        code_revision=code_rev,
        params=parse_params(param or []),
    )
    registry = container(ctx).registry
    private_key = None
    if sign is not None:
        from aiprov import signing

        private_key = signing.load_private_key(sign)  # a bad key is refused before anything is stored
    with progress_bar(f"pushing {path.name}") as progress:
        result = registry.push(path, request, progress)
    signed = None
    if private_key is not None:
        from aiprov.cli.signing import sign_version

        v = result.version
        bundle_path = Path(f"{v.name}-v{v.number}.sig")
        signed = sign_version(ctx, v.ref, private_key, bundle_path)
    on_chain_result = None
    if on_chain:
        from aiprov.cli.chain import anchoring, print_registration

        on_chain_result = anchoring(ctx, chain_key_file).register(result.version.ref)
    card = claim_card(ctx, path, result.version) if claims_from_card else None
    if json:
        extra: dict[str, Any] = {}
        if signed:
            extra["signature"] = {"bundle": str(bundle_path), "key_fingerprint": signed.key_fingerprint}
        if on_chain_result is not None:
            extra["on_chain"] = on_chain_result.to_json()
        if card is not None:
            extra["card_claims"] = card
        print_json({**result.to_json(), **extra})
        return
    v = result.version
    state = "unchanged (same bytes), still" if result.deduplicated else "registered"
    out_console.print(f"{v.full_name} {state} version [bold]{v.number}[/]  {v.manifest.digest}")
    out_console.print(
        f"{len(v.manifest.entries)} file(s), {_size(v.manifest.total_size)}; "
        f"stored {result.new_blobs} new blob(s), {_size(result.new_bytes)}"
    )
    if result.scan.verdict != "safe":
        unchecked = [f.path for f in result.scan.files if f.verdict != "safe"]
        out_console.print(
            f"scan: {len(unchecked)} file(s) of a format aiprov cannot check, never loaded by it: "
            + ", ".join(unchecked[:5])
            + (" …" if len(unchecked) > 5 else "")
        )
    if on_chain_result is not None:
        print_registration(on_chain_result)
    if card is not None:
        for made in card["claims"]:
            metrics = ", ".join(f"{k}={v}" for k, v in made["metrics"].items())
            out_console.print(f"claim {made['id']}: {metrics} on {made['dataset']}")
        for skipped in card["skipped"]:
            err_console.print(f"model card: not claimed ({skipped['dataset']}): {skipped['reason']}")


def claim_card(ctx: typer.Context, path: Path, version: VersionRecord) -> dict[str, list[dict[str, Any]]]:
    """Claim each result of the pushed README.md's model-index; what could not be claimed is listed, not fatal.

    The card is read from `path` and must be the bytes just pushed (its sha256 is the manifest's).
    """
    import hashlib

    from aiprov.errors import AiprovError
    from aiprov.services.claims import card_claims

    done: dict[str, list[dict[str, Any]]] = {"claims": [], "skipped": []}
    entry = next((e for e in version.manifest.entries if e.path.lower() == "readme.md"), None)
    if entry is None or not path.is_dir():
        done["skipped"].append({"dataset": None, "reason": "the model has no README.md"})
        return done
    raw = (path / entry.path).read_bytes()
    if hashlib.sha256(raw).hexdigest() != entry.sha256.hex:
        done["skipped"].append({"dataset": None, "reason": f"{entry.path} changed since it was pushed"})
        return done
    try:
        found = card_claims(raw.decode("utf-8", errors="replace"))
    except AiprovError as e:
        done["skipped"].append({"dataset": None, "reason": e.message})
        return done
    claims = container(ctx).claims
    for c in found:
        try:
            made = claims.claim(version.ref, metrics=c.result.metric_args(), benchmark=c.benchmark, dataset=c.dataset)
        except AiprovError as e:
            done["skipped"].append({"dataset": c.result.dataset, "reason": e.message})
            continue
        done["claims"].append(made.to_json())
    return done


@handle_errors
def hash_(
    path: Annotated[Path, typer.Argument(help="A model file or directory.")],
    json: JsonOpt = False,
) -> None:
    """Print a model's manifest and digest without storing anything (to check a local copy)."""
    from aiprov.adapters.files import hash_model

    with progress_bar(f"hashing {path.name}") as progress:
        manifest = hash_model(path, progress=progress)
    if json:
        print_json({"digest": str(manifest.digest), **manifest.to_json(), "total_size": manifest.total_size})
        return
    for e in manifest.entries:
        out_console.print(f"{e.sha256.hex}  {e.path}", soft_wrap=True)
    out_console.print(f"manifest {manifest.digest}  ({len(manifest.entries)} files, {_size(manifest.total_size)})")


@handle_errors
def ls(
    ctx: typer.Context,
    author: Annotated[str | None, typer.Option("--author", help="Models with a version by this author.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="OWNER/NAME glob, e.g. 'alice/*'.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Models with this tag.")] = None,
    search: Annotated[str | None, typer.Option("--search", help="Text in name, description or tags.")] = None,
    min_: Annotated[
        list[str] | None,
        typer.Option(
            "--min", help="METRIC=VALUE: the latest version has an evaluation with METRIC >= VALUE (repeatable)."
        ),
    ] = None,
    format_: Annotated[
        str | None,
        typer.Option("--format", help="Models whose latest version has a file of this format (safetensors, onnx, …)."),
    ] = None,
    sort: Annotated[
        str,
        typer.Option(
            "--sort",
            help="name, updated (newest version first), versions, downloads, reputation (of the latest version's "
            "author), or metric:NAME (best evaluation of the latest version first).",
        ),
    ] = "name",
    json: JsonOpt = False,
) -> None:
    """List models with their latest version."""
    from aiprov.records import ModelFilter, check_format
    from aiprov.services.evaluation import parse_min

    minimums = parse_min(min_ or [])
    fmt = check_format(format_) if format_ is not None else None
    c = container(ctx)
    f = ModelFilter(author=author, name_glob=name, tag=tag, search=search, min_metrics=minimums, format=fmt)
    models = c.registry.list(f, sort)
    if json:
        print_json([m.to_json() for m in models])
        return
    if not models:
        out_console.print("no models match" if any((author, name, tag, search, minimums, fmt)) else "no models yet")
        return
    # The digest is left to `show` and --json: at 80 columns it took the room the name and description need.
    table = Table(box=None)
    table.add_column("name", overflow="fold", min_width=min(40, max(len(m.full_name) for m in models)))
    table.add_column("latest", no_wrap=True)
    table.add_column("author", overflow="fold", max_width=16)
    table.add_column("size", no_wrap=True)
    table.add_column("description", overflow="fold", min_width=12)
    for m in models:
        v = m.latest
        table.add_row(
            escape(m.full_name),
            str(v.number) if v else "-",
            escape(v.author) if v else "-",
            _size(v.total_size) if v else "-",
            escape(m.description or ""),
        )
    out_console.print(table, soft_wrap=False)


@handle_errors
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="OWNER/NAME, OWNER/NAME@N, OWNER/NAME@ALIAS or a digest prefix.")],
    json: JsonOpt = False,
) -> None:
    """Show one version: files, digests, lineage, aliases, evaluations."""
    c = container(ctx)
    model, v = c.registry.show(ref)
    evaluations = c.evaluation.of_version(f"{v.full_name}@{v.number}")
    claims = c.claims.of_version(f"{v.full_name}@{v.number}")
    reputation = c.reputation.of(v.author)
    # Every row shown is held to the log entry that established it; a row that disagrees is marked, not hidden.
    mismatches = c.verification.rows(ref).failed
    if json:
        print_json(
            {
                **v.to_json(),
                "description": model.description,
                "license": model.license,
                "tags": list(model.tags),
                "versions": model.version_count,
                "evaluations": [e.summary() for e in evaluations],
                "claims": [k.summary() for k in claims],
                "author_reputation": reputation.score,
                "log_mismatches": [m.to_json() for m in mismatches],
            }
        )
        return
    failed = {m.name for m in mismatches}

    def mark(*checks: str) -> str:
        hit = [
            name for name in checks if name in failed or (name == "alias:" and any(f.startswith(name) for f in failed))
        ]
        return "  [bold red](disagrees with the log)[/]" if hit else ""

    out_console.print(f"[bold]{escape(v.full_name)}[/] version {v.number} of {model.version_count}")
    fields = grid()
    fields.add_row("digest", f"{v.manifest.digest}{mark('manifest', 'log.entry')}")
    if v.cids is not None and v.cids.v0 is not None:
        fields.add_row("ipfs", v.cids.v0)
        fields.add_row("CIDv1", v.cids.v1 or "-")
    fields.add_row("author", f"{escape(v.author)}{mark('actor')}  (reputation {reputation.score})")
    fields.add_row("created", f"{v.created_at:%Y-%m-%d %H:%M:%S} UTC")
    for label, value, checks in (
        ("about", model.description, ("metadata",)),
        ("licence", model.license, ("metadata",)),
        ("tags", ", ".join(model.tags), ("tags",)),
        ("aliases", ", ".join(v.aliases), ("alias:",)),
        ("parents", ", ".join(v.lineage.parents), ("lineage",)),
        ("datasets", ", ".join(v.lineage.datasets), ("lineage",)),
        ("code rev", v.lineage.code_revision, ("lineage",)),
        ("params", ", ".join(f"{k}={val}" for k, val in v.lineage.params.items()), ("lineage",)),
        ("metadata", plain(v.lineage.metadata), ("metadata",)),
    ):
        if value or mark(*checks):
            shown = printable(value or "-", multiline=label == "about")
            fields.add_row(label, f"{escape(shown)}{mark(*checks)}")
    for ev in evaluations:
        metrics = "  ".join(f"{k} {val:.4f}" for k, val in ev.metrics.items())
        signed = " (signed)" if ev.attestation else ""
        fields.add_row(f"eval {ev.id}", f"{escape(ev.dataset)}{signed}: {metrics}")
    for k in claims:
        stated = "  ".join(f"{name} {val:.4f}" for name, val in k.metrics.items())
        fields.add_row(f"claim {k.id}", f"{escape(k.dataset)}: {stated} (± {k.tolerance:g})")
    out_console.print(fields, soft_wrap=False)
    # Each path on its own line, whole: at 80 columns a table squeezed it to a few characters beside the digest.
    out_console.print(f"files    {len(v.manifest.entries)}, {_size(v.manifest.total_size)}{mark('formats')}")
    per_file_cids = v.cids is not None and (len(v.manifest.entries) > 1 or not v.single_file)
    files = Table.grid()
    files.add_column(overflow="fold")
    for e in v.manifest.entries:
        files.add_row(f"  [bold]{escape(printable(e.path))}[/]  {_size(e.size)}")
        files.add_row(f"    sha256 {e.sha256.hex}")
        if per_file_cids and v.cids is not None:
            files.add_row(f"    ipfs   {v.cids.files[e.path][0]}")
    out_console.print(files, soft_wrap=False)
    for m in mismatches:
        err_console.print(f"[bold red]warning:[/] {m.name} disagrees with the log: {escape(m.detail)}", soft_wrap=True)


@handle_errors
def pull(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to fetch (with --bundle and no hub: its CID).")],
    dest: Annotated[Path, typer.Argument(help="Directory to write the model's files into.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that differ.")] = False,
    from_ipfs: Annotated[
        list[str] | None,
        typer.Option(
            "--from-ipfs",
            help="Fetch the blocks from this IPFS trustless gateway instead of the hub (repeatable, tried in order).",
        ),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="With --from-ipfs: check the files against this model-signing bundle…"),
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="…signed by this public key (PEM). REF may then be a CID.")
    ] = None,
    cid_version: Annotated[
        int, typer.Option("--cid-version", min=0, max=1, help="With --from-ipfs: fetch the CIDv0 or CIDv1 DAG.")
    ] = 0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="With --from-ipfs: skip a gateway silent this many seconds.")
    ] = DEFAULT_TIMEOUT_S,
    json: JsonOpt = False,
) -> None:
    """Write a version's files into DEST, each verified against its digest before it appears.

    Refused, with nothing written, when a row the registry serves about the version disagrees with its log.
    With --from-ipfs the bytes come from IPFS gateways, each block checked against its CID, and the files must
    be exactly the version's manifest (from the hub), or the files a signed --bundle attests (no hub needed).
    """
    if from_ipfs or bundle is not None:
        from aiprov.cli.ipfs import pull_from_gateways

        pull_from_gateways(ctx, ref, dest, from_ipfs or [], bundle, public_key, cid_version, force, timeout, json)
        return
    from aiprov.hub import verified_pull

    with progress_bar("pulling") as progress:
        v = verified_pull(container(ctx), ref, dest, force=force, progress=progress)
    if json:
        print_json({**v.to_json(), "dest": str(dest)})
        return
    out_console.print(f"{v.ref} ({len(v.manifest.entries)} files, verified) -> {dest}")


@handle_errors
def alias(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version the alias should name.")],
    name: Annotated[str, typer.Argument(help="Alias, e.g. prod or staging.")],
    json: JsonOpt = False,
) -> None:
    """Point an alias (OWNER/NAME@ALIAS) at a version; moving it is recorded as an event."""
    v, previous = container(ctx).registry.alias(ref, name)
    if json:
        print_json(
            {
                "name": v.full_name,
                "alias": name,
                "version": v.number,
                "digest": str(v.manifest.digest),
                "previous": previous,
            }
        )
        return
    moved = f" (was {previous})" if previous else ""
    out_console.print(f"{v.full_name}@{name} -> version {v.number}{moved}")


@handle_errors
def usage(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="OWNER/NAME for every version, or one version.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many events.")] = 1000,
    json: JsonOpt = False,
) -> None:
    """Show how a model was used: pushes, alias moves, signatures, downloads, inferences, evaluations, newest first."""
    from aiprov.services.verification import altered_events

    c = container(ctx)
    events = c.registry.usage(ref, limit=limit)
    altered = altered_events(c.log, events)  # an edited row is shown as the registry has it, and marked
    counts: dict[str, int] = {}
    for e in events:
        counts[e.action] = counts.get(e.action, 0) + 1
    if json:
        print_json(
            {
                "ref": ref,
                "counts": counts,
                "events": [{**e.to_json(), "log_mismatch": altered.get(e.id)} for e in events],
            }
        )
        return
    if not events:
        out_console.print(f"no events for {ref}")
        return
    table = Table(box=None)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("actor", overflow="fold", max_width=16)
    table.add_column("action", no_wrap=True)
    table.add_column("details", overflow="fold", min_width=24)
    for e in events:
        details = escape(plain(e.details))
        if e.id in altered:
            details += f" [bold red](disagrees with the log: {escape(altered[e.id])})[/]"
        table.add_row(f"{e.time:%Y-%m-%d %H:%M}", escape(e.actor), e.action, details)
    out_console.print(table, soft_wrap=False)
    if altered:
        err_console.print(
            f"[bold red]warning:[/] {len(altered)} event row(s) disagree with the log; see `aiprov verify`"
        )


def grid() -> Table:
    """A borderless two-column table whose values fold: `label value` lines that wrap under their value."""
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, min_width=8)
    table.add_column(overflow="fold")
    return table


def plain(value: object, prefix: str = "") -> str:
    """A JSON value as the user reads it: `k=v` pairs (nested keys dotted), lists comma-joined, empty values left out.

    Never a Python repr: `cids={'v0': …}` and `previous=None` are what scripts read with `--json`.
    """
    if isinstance(value, dict):
        parts = [plain(v, f"{prefix}{printable(str(k))}.") for k, v in value.items() if v not in (None, "", [], {})]
        return " ".join(p for p in parts if p)
    if isinstance(value, list | tuple):
        text = ", ".join(plain(v) if isinstance(v, dict) else printable(str(v)) for v in value)
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    else:
        text = printable(str(value))
    return f"{prefix.rstrip('.')}={text}" if prefix else text
