"""Jobs: `aiprov worker` runs queued evaluations and reproductions; `aiprov job status ID` reads one."""

from __future__ import annotations

import json as jsonlib
import os
import socket
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from aiprov.cli.common import container, err_console, fail, handle_errors, local_container, out_console, print_json

if TYPE_CHECKING:
    from aiprov.interface import HubServices
    from aiprov.records import JobRecord

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (a stable shape scripts can rely on).")]

jobs_app = typer.Typer(
    help="Evaluations and reproductions queued for `aiprov worker` (a hub with AIPROV_JOBS=queue).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command(name="worker")(worker)
    app.add_typer(jobs_app, name="job")


def describe(job: JobRecord) -> str:
    """One line: the job, what it does, its state."""
    r = job.request
    if job.kind == "reproduce":
        what = f"reproduce evaluation {r.get('evaluation_id')} of {r.get('ref')}"
    else:
        data = r.get("benchmark") or r.get("dataset")
        what = f"evaluate {r.get('ref')} on {data}"
    tries = f", attempt {job.attempts}" if job.attempts > 1 else ""
    return f"job {job.id} ({what}): {job.state}{tries}"


def follow(c: HubServices, job: JobRecord, *, no_wait: bool, json: bool) -> JobRecord | None:
    """Wait for a queued `job` with a status line on stderr; None (after printing the job) under `--no-wait`.

    A job that ended failed exits with its error, as the same command run in process would.
    """
    from aiprov.remote.jobs import failure, wait

    if no_wait and not job.finished:
        if json:
            print_json(job.to_json())
        else:
            out_console.print(f"{escape(describe(job))}\nfollow it: aiprov job status {job.id}", soft_wrap=False)
        return None
    with err_console.status(escape(describe(job))) as status:
        job = wait(c.jobs.get, job, on_change=lambda j: status.update(escape(describe(j))))
    if job.state == "failed":
        fail(failure(job), json)
    return job


@jobs_app.command("status")
@handle_errors
def status(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(min=1, help="The job id that `aiprov eval --no-wait` printed.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the job has succeeded or failed.")] = False,
    json: JsonOpt = False,
) -> None:
    """Show a job's state (queued, running, succeeded, failed), with its result or the problem it ended with."""
    c = container(ctx)
    job = c.jobs.get(job_id)
    if wait:
        from aiprov.remote.jobs import wait as wait_for

        with err_console.status(escape(describe(job))) as line:
            job = wait_for(c.jobs.get, job, on_change=lambda j: line.update(escape(describe(j))))
    if json:
        print_json(job.to_json())
        return
    out_console.print(escape(describe(job)), soft_wrap=False)
    if job.state == "succeeded" and job.result is not None:
        if "evaluation" in job.result:
            e = job.evaluation()
            reused = " (an identical evaluation, reused)" if job.result.get("reused") else ""
            out_console.print(f"evaluation {e.id}{reused}, log entry {e.leaf_index}", soft_wrap=False)
            out_console.print("  ".join(f"{k} {v:.4f}" for k, v in e.metrics.items()), soft_wrap=False)
        else:
            identical = bool(job.result.get("reproduction", {}).get("identical"))
            out_console.print("identical metrics" if identical else "the metrics differ", soft_wrap=False)
    elif job.state == "failed" and job.error is not None:
        out_console.print(f"error: {escape(str(job.error.get('detail')))}", soft_wrap=True)


@handle_errors
def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=256, help="Jobs this worker runs at once.")
    ] = 1,
    json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON line per finished job, and one with the totals at the stop."),
    ] = False,
) -> None:
    """Run queued evaluations and reproductions until SIGTERM or SIGINT (running jobs finish first).

    Start it on any machine with the sandbox and this hub's settings: the same AIPROV_DATABASE_URL (PostgreSQL),
    the same blob store (AIPROV_BLOBS) and the log key (AIPROV_LOG_KEY_FILE). Each job runs through the same
    evaluation code as `aiprov eval`, in sandboxed model workers, and is recorded and logged the same way. A job
    whose worker died is put back in the queue after AIPROV_JOBS_STALL_TIMEOUT_S and finished by another worker.
    The queue's tables are created here (and by `aiprov init`) when missing.
    """
    c = local_container(ctx)
    c.checked_db  # noqa: B018 - a missing home or an old schema is a one-line error before any job is taken
    c.log_signer  # noqa: B018 - the worker signs the checkpoints of what it logs
    queue = c.job_queue
    created = queue.ensure_schema()
    name = f"{socket.gethostname()}:{os.getpid()}"
    stall = c.settings.jobs_stall_timeout_s

    def finished(job: JobRecord) -> None:
        if json:
            sys.stdout.write(jsonlib.dumps({"event": "finished", "job": job.to_json()}) + "\n")
            sys.stdout.flush()
        else:
            out_console.print(escape(describe(job)), soft_wrap=False)

    def started() -> None:
        if json:
            line = {"event": "started", "worker": name, "concurrency": concurrency, "stall_timeout_s": stall}
            sys.stdout.write(jsonlib.dumps({**line, "created_queue_tables": created}) + "\n")
            sys.stdout.flush()
        else:
            err_console.print(f"worker {name}: up to {concurrency} job(s) at once; stop with Ctrl-C or SIGTERM")

    queue.on_started = started
    queue.on_finished = finished
    tally = queue.work(concurrency=concurrency, stall_timeout_s=stall, name=name)
    if json:
        sys.stdout.write(jsonlib.dumps({"event": "stopped", "worker": name, **tally.to_json()}) + "\n")
    else:
        err_console.print(
            f"worker {name} stopped: {tally.succeeded} succeeded, {tally.failed} failed, "
            f"{len(tally.recovered)} recovered from stalled workers"
        )
