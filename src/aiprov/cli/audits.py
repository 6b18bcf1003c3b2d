"""Fair evaluation commands: `claim`, `audit`, `rate`, `flag` and `reputation` (docs/audits.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from aiprov.cli.common import container, handle_errors, out_console, print_json
from aiprov.errors import InvalidInput

if TYPE_CHECKING:
    from aiprov.signing import PrivateKey

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (a stable shape scripts can rely on).")]
KeyOpt = Annotated[Path | None, typer.Option("--key", help="Sign it (an in-toto statement) with this private key.")]


def register(app: typer.Typer) -> None:
    app.command(name="claim")(claim)
    app.command(name="audit")(audit)
    app.command(name="rate")(rate)
    app.command(name="flag")(flag)
    app.command(name="reputation")(reputation)


def _key(path: Path | None) -> PrivateKey | None:
    if path is None:
        return None
    from aiprov import signing

    return signing.load_private_key(path)  # a bad key is refused before anything runs


def _metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())


@handle_errors
def claim(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version (OWNER/NAME[@N|@ALIAS] or digest); its digest is claimed.")],
    metric: Annotated[
        list[str], typer.Option("--metric", help="METRIC=VALUE the version achieves (repeat for several).")
    ],
    benchmark: Annotated[
        str | None, typer.Option("--benchmark", help="A scikit-learn benchmark: iris, digits, wine, …")
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="A registered dataset, OWNER/NAME.")] = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="How far (absolute, 0 to 1) an audit may measure from each value.")
    ] = 0.005,
    key: KeyOpt = None,
    json: JsonOpt = False,
) -> None:
    """State what a version scores, for anyone to audit; logged (its id is its log index)."""
    record = container(ctx).claims.claim(
        ref, metrics=metric, benchmark=benchmark, dataset=dataset, tolerance=tolerance, key=_key(key)
    )
    if json:
        print_json(record.to_json())
        return
    signed = f", signed by {record.key_fingerprint[:16]}" if record.key_fingerprint else ""
    out_console.print(
        f"claim [bold]{record.id}[/]: {record.model}@{record.version} on {record.dataset} "
        f"(tolerance {record.tolerance:g}{signed})",
        soft_wrap=False,
    )
    out_console.print(_metrics(record.metrics), soft_wrap=False)


@handle_errors
def audit(
    ctx: typer.Context,
    claim_id: Annotated[int | None, typer.Argument(help="The claim to audit (its id, a log index).")] = None,
    evaluation: Annotated[int | None, typer.Option("--eval", help="Audit evaluation ID instead of a claim.")] = None,
    key: KeyOpt = None,
    json: JsonOpt = False,
) -> None:
    """Re-run a claim or evaluation from its digests here, in the sandbox, and record the verdict.

    Exit 0 when confirmed, 6 when refuted (the audit is recorded either way). With --server the model and data
    are fetched by digest and checked here, the evaluation runs here, and only the result is sent.
    """
    if claim_id is not None and evaluation is not None:
        raise InvalidInput("give a CLAIM_ID or --eval ID, not both")
    record = container(ctx).audits.audit(claim_id, evaluation_id=evaluation, key=_key(key))
    if json:
        print_json(record.to_json())
    else:
        colour = "green" if record.verdict == "confirmed" else "red"
        out_console.print(
            f"audit [bold]{record.id}[/] of {record.target} {record.target_id} ({record.model}@{record.version}): "
            f"[bold {colour}]{record.verdict}[/]",
            soft_wrap=False,
        )
        for d in record.differences:
            measured = "-" if d["measured"] is None else f"{d['measured']:.4f}"
            mark = "ok" if d["ok"] else "outside tolerance"
            out_console.print(f"  {d['metric']}: claimed {d['claimed']:.4f}, measured {measured} ({mark})")
        for m in record.environment_mismatch:
            out_console.print(
                f"  environment: {escape(m['package'])} {m['recorded'] or '-'} there, {m['audit'] or '-'} here"
            )
    if record.verdict != "confirmed":
        raise typer.Exit(6)


@handle_errors
def rate(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to rate.")],
    stars: Annotated[int, typer.Option("--stars", help="1 to 5; your last rating of a version is the one counted.")],
    json: JsonOpt = False,
) -> None:
    """Rate a version (logged)."""
    record = container(ctx).claims.rate(ref, stars)
    if json:
        print_json(record.to_json())
        return
    out_console.print(f"rated {record.model}@{record.version} {record.stars}/5 (log entry {record.id})")


@handle_errors
def flag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to flag.")],
    reason: Annotated[str, typer.Option("--reason", help="What is wrong with it.")],
    json: JsonOpt = False,
) -> None:
    """Flag a version with a reason (logged)."""
    record = container(ctx).claims.flag(ref, reason)
    if json:
        print_json(record.to_json())
        return
    out_console.print(f"flagged {record.model}@{record.version} (log entry {record.id})")


@handle_errors
def reputation(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Argument(help="One account (default: every account, best first).")] = None,
    from_log: Annotated[
        bool,
        typer.Option(
            "--from-log", help="Recompute from the log's tiles, proven with the pinned log key, not the hub's tables."
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Reputation: a deterministic score over the log's claims, audits, ratings, flags and stake outcomes."""
    service = container(ctx).reputation
    found = service.from_log(account) if from_log else service.all() if account is None else [service.of(account)]
    if json:
        print_json(found[0].to_json() if account is not None else [r.to_json() for r in found])
        return
    table = Table(box=None)
    for column in ("account", "score", "confirmed", "refuted", "audits agreed", "disagreed", "ratings", "flags"):
        table.add_column(column, no_wrap=True)
    for r in found:
        b = r.breakdown
        table.add_row(
            escape(r.account), str(r.score), str(b["claims"]["confirmed"]), str(b["claims"]["refuted"]),
            str(b["audits"]["agreed"]), str(b["audits"]["disagreed"]), str(b["rating_points"]),
            str(b["flags_received"]),
        )  # fmt: skip
    out_console.print(table, soft_wrap=False)
    source = "recomputed from the log's tiles" if from_log else "from the hub"
    size = found[0].log_size if found else 0
    out_console.print(f"{source}, log size {size}")
