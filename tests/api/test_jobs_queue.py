"""Evaluations as jobs on the real PostgreSQL queue (procrastinate): a server with AIPROV_JOBS=queue answers 202,
`aiprov worker` processes run the jobs, and what they record is what a synchronous evaluation records.

Each test gets its own PostgreSQL schema (`postgres_url`), so aiprov's tables and procrastinate's live there.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from apitools import ADMIN, Server
from sqlalchemy import text
from tests.support import free_port
from tests.support.cli import cli, remote

from aiprov.config import Container
from aiprov.errors import ModelExecutionError
from aiprov.hub import Hub

pytestmark = pytest.mark.postgres

STALL_S = 2.0
"""The stall timeout the tests run workers with: a killed worker's job is back in the queue after it."""

QUEUE_ENV = {"AIPROV_JOBS": "queue", "AIPROV_JOBS_STALL_TIMEOUT_S": str(STALL_S), "AIPROV_JOBS_RETRY_WAIT_S": "0"}


@dataclass
class Worker:
    """A running `aiprov worker --json` process."""

    process: subprocess.Popen[str]
    out: Path

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def stop(self) -> dict[str, Any]:
        """SIGTERM, as an operator or systemd stops it: it exits 0 and prints its totals."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(60) == 0, self.out.read_text()
        last = self.lines()[-1]
        assert last["event"] == "stopped"
        return last


@pytest.fixture
def queued(make_server: Callable[..., Server], postgres_url: str) -> Server:
    """A real `aiprov serve` on a fresh PostgreSQL schema with AIPROV_JOBS=queue (init applied the queue's tables)."""
    server = make_server(env=QUEUE_ENV, database_url=postgres_url)
    server.cli("init")  # with AIPROV_JOBS=queue: creates procrastinate's tables in the schema
    return server


@pytest.fixture
def workers(queued: Server) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Worker:
        out = queued.home.parent / f"worker-{len(started)}.jsonl"
        with open(out, "w") as sink:
            command = [sys.executable, "-m", "aiprov", "--home", str(queued.home), "worker", "--json", *args]
            environment = {**queued.env, **(env or {})}
            process = subprocess.Popen(command, env=environment, stdout=sink, stderr=subprocess.DEVNULL, text=True)
        worker = Worker(process, out)
        started.append(worker)
        deadline = time.monotonic() + 60
        while not out.read_text().strip():
            assert process.poll() is None, "aiprov worker exited at start"
            assert time.monotonic() < deadline, "aiprov worker did not start"
            time.sleep(0.05)
        assert worker.lines()[0]["event"] == "started"
        return worker

    yield start
    for w in started:
        if w.process.poll() is None:
            w.process.kill()
            w.process.wait()


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random forest of 8,000 trees: its evaluation takes seconds in the sandbox, long enough to kill its worker."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    root = tmp_path_factory.mktemp("forest")
    joblib.dump(RandomForestClassifier(n_estimators=8000, random_state=0).fit(x, y), root / "model.joblib")
    return root


def push(server: Server, model: Path, name: str) -> None:
    server.cli("push", str(model), "--name", name)


def ask(server: Server, name: str, benchmark: str) -> httpx.Response:
    return server.admin.post(f"/api/v1/models/{name}/evaluations", json={"benchmark": benchmark})


def job_until(server: Server, job_id: int, states: tuple[str, ...], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = server.admin.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}"
        time.sleep(0.05)


def evaluations(server: Server, name: str) -> list[dict[str, Any]]:
    r = server.admin.get(f"/api/v1/models/{name}/evaluations")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


def test_a_queued_evaluation_is_202_and_a_worker_records_and_logs_it(
    queued: Server, workers: Callable[..., Worker], iris: tuple[Path, Any]
) -> None:
    push(queued, iris[0], "root/iris")
    r = ask(queued, "root/iris", "iris")
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["kind"] == "evaluate" and job["actor"] == ADMIN
    assert evaluations(queued, "root/iris") == []  # nothing runs in the server

    worker = workers()
    done = job_until(queued, job["id"], ("succeeded", "failed"))
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["reused"] is False and done["attempts"] == 1
    recorded = done["result"]["evaluation"]
    # recorded exactly as a synchronous evaluation is: the row, its log event, the caller as evaluator
    assert evaluations(queued, "root/iris") == [recorded]
    assert recorded["evaluator"] == ADMIN and recorded["metrics"]["accuracy"] > 0.9
    entry = queued.admin.get(f"/api/v1/log/entries/{recorded['leaf_index']}").json()
    assert entry["event"]["action"] == "evaluate" and entry["event"]["details"]["metrics"] == recorded["metrics"]
    assert queued.cli("verify", "root/iris@1").returncode == 0

    # the same evaluation asked again is answered by the finished one, not run again
    again = ask(queued, "root/iris", "iris")
    assert again.status_code == 202 and again.json()["state"] == "succeeded"
    assert again.json()["result"] == {"evaluation": recorded, "reused": True}
    assert len(evaluations(queued, "root/iris")) == 1
    # another split is other work: it runs
    other = job_until(queued, ask(queued, "root/iris", "wine").json()["id"], ("succeeded", "failed"))
    assert other["state"] == "failed"  # wine has 13 features, the iris model 4: the job fails, see below
    assert worker.stop()["succeeded"] == 1


def test_the_same_evaluation_asked_twice_at_once_runs_once(
    queued: Server, workers: Callable[..., Worker], iris: tuple[Path, Any]
) -> None:
    push(queued, iris[0], "root/iris")
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(4)

    def asking() -> None:
        barrier.wait()
        answers.append(ask(queued, "root/iris", "iris"))

    threads = [threading.Thread(target=asking) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [202] * 4
    assert len({a.json()["id"] for a in answers}) == 1  # one job, whoever asked first

    workers("--concurrency", "2")
    workers("--concurrency", "2")
    job = job_until(queued, answers[0].json()["id"], ("succeeded", "failed"))
    assert job["state"] == "succeeded"
    assert len(evaluations(queued, "root/iris")) == 1


def test_a_worker_killed_mid_job_leaves_the_job_to_another_worker(
    queued: Server, workers: Callable[..., Worker], forest: Path
) -> None:
    push(queued, forest, "root/forest")
    job_id = ask(queued, "root/forest", "iris").json()["id"]
    first = workers()
    running = job_until(queued, job_id, ("running", "succeeded", "failed"))
    assert running["state"] == "running"
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    assert queued.admin.get(f"/api/v1/jobs/{job_id}").json()["state"] == "running"  # nobody finishes it

    second = workers()
    done = job_until(queued, job_id, ("succeeded", "failed"))
    assert done["state"] == "succeeded", done["error"]
    assert done["attempts"] == 2  # started by the killed worker, finished by the second
    assert len(evaluations(queued, "root/forest")) == 1
    totals = second.stop()
    assert totals["succeeded"] == 1 and len(totals["recovered"]) == 1


def test_a_failing_job_ends_failed_with_its_problem_and_the_cli_says_it_in_one_line(
    queued: Server, workers: Callable[..., Worker], iris: tuple[Path, Any]
) -> None:
    push(queued, iris[0], "root/iris")
    workers()
    r = ask(queued, "root/iris", "diabetes")  # 10 features for a model of 4: the model raises in its worker
    assert r.status_code == 202
    job = job_until(queued, r.json()["id"], ("succeeded", "failed"))
    assert job["state"] == "failed" and job["attempts"] == 1  # the request is at fault: not retried
    problem = job["error"]
    assert problem["status"] // 100 == 4 and problem["title"] and problem["code"] != "error"
    assert "Traceback" not in problem["detail"] and str(queued.home) not in problem["detail"]
    assert evaluations(queued, "root/iris") == []

    ran = remote(queued, queued.admin_token, "eval", "root/iris", "--benchmark", "diabetes")
    assert ran.code == problem["exit_code"]
    assert ran.error() == f"error: {problem['detail']}" + (f" ({problem['hint']})" if "hint" in problem else "")


def test_a_job_failing_for_a_passing_reason_is_tried_again_then_fails_with_a_backend_problem(
    queued: Server, workers: Callable[..., Worker], iris: tuple[Path, Any]
) -> None:
    push(queued, iris[0], "root/iris")
    job_id = ask(queued, "root/iris", "iris").json()["id"]
    unreachable_store = {  # this worker's blob store is down: no attempt can read the model
        "AIPROV_BLOBS": "s3://nowhere/hub",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "us-east-1",
        "AIPROV_JOBS_ATTEMPTS": "2",
    }
    worker = workers(env=unreachable_store)
    job = job_until(queued, job_id, ("succeeded", "failed"))
    assert job["state"] == "failed" and job["attempts"] == 2
    assert job["error"]["code"] == "backend_failure" and job["error"]["status"] == 503
    totals = worker.stop()
    assert (totals["retried"], totals["failed"], totals["succeeded"]) == (1, 1, 0)
    assert evaluations(queued, "root/iris") == []


def test_no_wait_prints_the_job_and_job_status_reads_it(
    queued: Server, workers: Callable[..., Worker], iris: tuple[Path, Any]
) -> None:
    push(queued, iris[0], "root/iris")
    token = queued.admin_token
    printed = remote(queued, token, "eval", "root/iris", "--benchmark", "iris", "--no-wait", "--json").json()
    assert printed["state"] == "queued" and printed["kind"] == "evaluate"
    human = remote(queued, token, "eval", "root/iris", "--benchmark", "iris", "--no-wait")
    assert human.code == 0 and f"job {printed['id']} " in human.out  # the same work: the same job
    assert f"aiprov job status {printed['id']}" in human.out

    status = remote(queued, token, "job", "status", str(printed["id"]), "--json").json()
    assert status["id"] == printed["id"] and status["state"] == "queued"
    workers()
    waited = remote(queued, token, "job", "status", str(printed["id"]), "--wait", "--json").json()
    assert waited["state"] == "succeeded"
    # waiting (the default) prints the evaluation as a synchronous `aiprov eval` does
    record = remote(queued, token, "eval", "root/iris", "--benchmark", "iris", "--json").json()
    assert record == waited["result"]["evaluation"]


def test_a_bad_job_id_is_a_problem_not_a_500(queued: Server) -> None:
    missing = queued.admin.get("/api/v1/jobs/987654")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "no job 987654"
    for bad in ("0", "-1", "abc", str(2**63)):
        assert queued.admin.get(f"/api/v1/jobs/{bad}").status_code == 422
    ran = remote(queued, queued.admin_token, "job", "status", "987654")
    assert ran.code == 3 and ran.error() == "error: no job 987654"


def test_sigterm_stops_an_idle_worker_cleanly(queued: Server, workers: Callable[..., Worker]) -> None:
    totals = workers().stop()
    assert (totals["succeeded"], totals["failed"], totals["retried"], totals["recovered"]) == (0, 0, 0, [])


def test_a_worker_on_sqlite_is_a_one_line_error(home: Path) -> None:
    ran = cli(home, "worker")
    assert ran.code == 2
    assert ran.error().startswith("error: the job queue needs PostgreSQL, not sqlite")


def test_without_a_queue_an_evaluation_still_runs_in_the_request(make_server: Callable[..., Server], iris: Any) -> None:
    server = make_server(env={"AIPROV_JOBS": "inline"})
    push(server, iris[0], "root/iris")
    r = ask(server, "root/iris", "iris")
    assert r.status_code == 201 and "location" not in r.headers
    assert server.admin.get("/api/v1/jobs/1").status_code == 404  # nothing was queued


def test_a_job_is_queued_in_the_transaction_that_records_it(
    make_container: Callable[..., Container], postgres_url: str
) -> None:
    hub = make_container(postgres_url)
    queue = hub.job_queue
    assert queue.ensure_schema() is True and queue.ensure_schema() is False  # created once, then found
    now = hub.clock()

    class Refused(Exception):
        pass

    with pytest.raises(Refused), hub.db.unit(write=True) as u:
        job = u.add_job("evaluate", "evaluate:k", {}, "alice", now)
        queue.defer(u, job.id, lock="k")
        raise Refused  # the request fails after the enqueue: neither the job nor the queue's row may stay
    with hub.db.unit() as u:
        assert u.s.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar_one() == 0
        assert u.active_job("evaluate:k") is None

    with hub.db.unit(write=True) as u:
        job = u.add_job("evaluate", "evaluate:k", {}, "alice", now)
        queue_id = queue.defer(u, job.id, lock="k")
        u.set_job_queue_id(job.id, queue_id)
    with hub.db.unit() as u:
        row = u.s.execute(text("SELECT lock, args FROM procrastinate_jobs WHERE id = :i"), {"i": queue_id}).one()
        assert (row.lock, row.args) == ("k", {"job": job.id})
        assert u.active_job("evaluate:k") == u.job(job.id)


def test_a_reproduction_is_a_job_too(queued: Server, workers: Callable[..., Worker], iris: tuple[Path, Any]) -> None:
    push(queued, iris[0], "root/iris")
    workers()
    evaluation = remote(queued, queued.admin_token, "eval", "root/iris", "--benchmark", "iris", "--json").json()
    r = queued.admin.post(f"/api/v1/evaluations/{evaluation['id']}/reproduce")
    assert r.status_code == 202 and r.json()["kind"] == "reproduce"
    job = job_until(queued, r.json()["id"], ("succeeded", "failed"))
    assert job["result"]["reproduction"]["identical"] is True
    assert job["result"]["reproduction"]["metrics"] == evaluation["metrics"]
    ran = remote(queued, queued.admin_token, "eval", "--reproduce", str(evaluation["id"]))
    assert ran.code == 0 and f"evaluation {evaluation['id']} reproduced: identical metrics" in ran.out
    assert queued.admin.post("/api/v1/evaluations/987654/reproduce").status_code == 404  # nothing queued


def test_the_python_api_waits_for_a_queued_evaluation(
    queued: Server, workers: Callable[..., Worker], iris: tuple[Path, Any], tmp_path: Path
) -> None:
    push(queued, iris[0], "root/iris")
    workers()
    with Hub(tmp_path / "client", server=queued.base_url, token=queued.admin_token) as hub:
        made = hub.evaluate("root/iris", benchmark="iris")
        with pytest.raises(ModelExecutionError) as failed:  # the class the worker's evaluation raised
            hub.evaluate("root/iris", benchmark="diabetes")
    assert evaluations(queued, "root/iris") == [made.to_json()]
    assert failed.value.exit_code == 9 and "features" in failed.value.message


def test_a_home_with_a_queue_evaluates_through_its_workers_too(
    queued: Server, workers: Callable[..., Worker], iris: tuple[Path, Any]
) -> None:
    push(queued, iris[0], "root/iris")
    env = {**QUEUE_ENV, "AIPROV_DATABASE_URL": queued.env["AIPROV_DATABASE_URL"], "AIPROV_ACTOR": ADMIN}
    job = cli(queued.home, "eval", "root/iris", "--benchmark", "iris", "--no-wait", "--json", env=env).json()
    assert job["state"] == "queued" and job["actor"] == ADMIN
    workers()
    record = cli(queued.home, "eval", "root/iris", "--benchmark", "iris", "--json", env=env).json()
    assert record == job_until(queued, job["id"], ("succeeded", "failed"))["result"]["evaluation"]
    assert evaluations(queued, "root/iris") == [record]


def test_a_queued_job_whose_work_was_recorded_meanwhile_reuses_it(
    queued: Server, workers: Callable[..., Worker], iris: tuple[Path, Any]
) -> None:
    push(queued, iris[0], "root/iris")
    job_id = ask(queued, "root/iris", "iris").json()["id"]
    inline = {"AIPROV_DATABASE_URL": queued.env["AIPROV_DATABASE_URL"], "AIPROV_JOBS": "inline", "AIPROV_ACTOR": ADMIN}
    recorded = cli(queued.home, "eval", "root/iris", "--benchmark", "iris", "--json", env=inline).json()
    workers()
    job = job_until(queued, job_id, ("succeeded", "failed"))
    assert job["result"] == {"evaluation": recorded, "reused": True}  # as after a worker died having recorded it
    assert evaluations(queued, "root/iris") == [recorded]
