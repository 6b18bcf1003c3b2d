"""Evaluation commands: `eval` (and `eval --reproduce`) and the `dataset` group."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from aiprov.cli.common import container, err_console, fail, handle_errors, out_console, print_json
from aiprov.cli.jobs import follow
from aiprov.cli.models import plain
from aiprov.errors import InvalidInput, VerificationError
from aiprov.records import JobRecord

if TYPE_CHECKING:
    from aiprov.records import Reproduction

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (a stable shape scripts can rely on).")]

datasets_app = typer.Typer(help="Register datasets (CSV or Parquet) to evaluate models on.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command(name="eval")(evaluate)
    app.add_typer(datasets_app, name="dataset")


def _metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())


@handle_errors
def evaluate(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(help="The version to evaluate (OWNER/NAME[@N|@ALIAS] or digest).")
    ] = None,
    benchmark: Annotated[
        str | None,
        typer.Option("--benchmark", help="A scikit-learn benchmark: iris, digits, wine, breast_cancer, diabetes."),
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="A registered dataset, OWNER/NAME.")] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="Sign the result with this private key (see `aiprov keys new`).")
    ] = None,
    reproduce: Annotated[
        int | None, typer.Option("--reproduce", help="Re-run evaluation ID and compare (exit 6 if it differs).")
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait", help="On a hub with a job queue: print the job (its id) and return; see `aiprov job status`."
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Evaluate a version in a sandboxed worker; the metrics are recorded and logged (and signed with --key).

    Benchmarks use the test part of a seeded split (25%, random_state 0, stratified for classification);
    a dataset is evaluated whole. On a hub with a job queue (AIPROV_JOBS=queue, locally or behind --server)
    the evaluation is a job run by `aiprov worker`: this waits for it with a status line, unless --no-wait.
    """
    c = container(ctx)
    if reproduce is not None:
        if ref is not None or benchmark is not None or dataset is not None or key is not None:
            raise InvalidInput("--reproduce ID takes no REF, --benchmark, --dataset or --key")
        reproduced = c.jobs.reproduce(reproduce)
        if isinstance(reproduced, JobRecord):
            job = follow(c, reproduced, no_wait=no_wait, json=json)
            if job is None:
                return
            reproduced = job.reproduction(c.evaluation.get(reproduce))
        _reproduce(reproduced, json)
        return
    if ref is None:
        raise InvalidInput("give the version to evaluate", hint="aiprov eval OWNER/NAME --benchmark iris")
    if key is not None:
        from aiprov import signing

        private_key = signing.load_private_key(key)  # a bad key is refused before the model runs
        # signed where the key is: never queued for a worker elsewhere
        record = c.evaluation.evaluate(ref, benchmark=benchmark, dataset=dataset, key=private_key)
    else:
        answer = c.jobs.evaluate(ref, benchmark=benchmark, dataset=dataset)
        if isinstance(answer, JobRecord):
            job = follow(c, answer, no_wait=no_wait, json=json)
            if job is None:
                return
            answer = job.evaluation()
        record = answer
    if json:
        print_json(record.to_json())
        return
    signed = f", signed by {record.key_fingerprint[:16]}" if record.key_fingerprint else ""
    out_console.print(
        f"evaluation [bold]{record.id}[/]: {record.model}@{record.version} on {record.dataset} "
        f"({record.split['test_rows']} rows, {record.duration_s:.2f} s{signed}; log entry {record.leaf_index})",
        soft_wrap=False,
    )
    out_console.print(_metrics(record.metrics), soft_wrap=False)  # wraps between metrics at 80 columns


def _reproduce(result: Reproduction, json: bool) -> None:
    if json:
        print_json(result.to_json())
    elif result.identical:
        o = result.original
        out_console.print(f"evaluation {o.id} reproduced: identical metrics ({o.model}@{o.version} on {o.dataset})")
        out_console.print(_metrics(result.metrics), soft_wrap=False)
    else:
        err_console.print(f"[bold red]evaluation {result.original.id} did not reproduce:[/]")
        for d in result.differences:
            recorded, now = plain(d["recorded"]) or "-", plain(d["now"]) or "-"
            err_console.print(f"  {d['field']}: recorded {escape(recorded)}, now {escape(now)}", soft_wrap=True)
    if not result.identical:
        fields = ", ".join(str(d["field"]) for d in result.differences)
        error = VerificationError(f"evaluation {result.original.id} did not reproduce: {fields}")
        if json:
            fail(error, json)
        raise typer.Exit(error.exit_code)


@datasets_app.command("add")
@handle_errors
def dataset_add(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A CSV (with a header row) or Parquet file.")],
    name: Annotated[str, typer.Option("--name", "-n", help="OWNER/NAME to register it under.")],
    target: Annotated[str, typer.Option("--target", help="The column holding what a model should predict.")],
    task: Annotated[
        str | None,
        typer.Option("--task", help="classification or regression (default: regression for a float target)."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Register a dataset by the digest of its bytes; every other column is a numeric feature."""
    record, new = container(ctx).datasets.add(path, name, target, task)
    if json:
        print_json({**record.to_json(), "new": new})
        return
    state = "registered" if new else "already registered (same bytes)"
    out_console.print(
        f"{record.full_name} {state}  {record.digest}\n"
        f"{record.format}, {record.rows} rows, {len(record.features)} features, target {escape(record.target)} "
        f"({record.task})"
    )


@datasets_app.command("ls")
@handle_errors
def dataset_ls(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List the registered datasets."""
    records = container(ctx).datasets.list()
    if json:
        print_json([r.to_json() for r in records])
        return
    if not records:
        out_console.print("no datasets yet")
        return
    table = Table(box=None)
    for column in ("name", "task", "rows", "target", "digest"):
        table.add_column(column, no_wrap=True)
    for r in records:
        table.add_row(r.full_name, r.task, str(r.rows), r.target, r.digest[:19])
    out_console.print(table, soft_wrap=False)
