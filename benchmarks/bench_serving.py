"""Serving: the same scikit-learn Iris model behind `aiprov serve` and `mlflow models serve`, side by side.

    python benchmarks/bench_serving.py [--quick] [--duration S] [--runs N]

Each server runs pinned to core 0 (`taskset -c 0`, its children inherit it: aiprov's model worker, MLflow's
uvicorn); `wrk` runs pinned to core 1 and POSTs JSON bodies (a Lua script), each with `Authorization: Bearer <token>` (a
write-scope token of a user made for the run: what a hub's callers send). aiprov serves with usage logging on (the
default: a prediction is answered once its usage event is committed, group-committed) and the run checks
afterwards that every request was logged.
Cases: 1 row at 1 connection (p50 latency) and at 16 connections (throughput, p50), 1,000 rows likewise; then the
server's RSS (the process tree: API process and model workers). Every server runs at once (idle but for the one
measured), and each case is interleaved: a warm-up of each server, then `--runs` rounds (3) of one wrk run per
server in turn, so every ratio compares runs made under the same load on a shared VM (one run moves by 10-20%).
Medians are reported with the range of req/s, and with the CPU time the server's process tree spent per request,
read from /proc: the other work on the VM moves it far less than req/s, and its inverse is the throughput a
dedicated core would give. Prints one table, a `ratio` line per comparison with its target and PASS/MISS. Exits 0
when everything ran, whatever the ratios; 1 if a server or wrk failed.

A third server, `unlogged`, is aiprov's own app, protocol, token check and sandboxed worker as `aiprov serve` runs
them, with predictions not logged: the difference to `aiprov` is what durable usage logging costs, measured in
the same run (issue 14 asks for it); aiprov has no setting that turns logging off. A fourth, `floor`, is the
ceiling of any Python endpoint on uvicorn here: a bare ASGI function (no framework, no model, no JSON parsing, no
logging) on the same uvicorn, loop and HTTP parser as `aiprov serve`, pinned to the same core, answering every
POST with a fixed body. It says how much of a target is left to the framework and the model, and whether a
target can be met on uvicorn at all on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

P50_TARGET = 0.2  # aiprov 1-row p50 <= 0.2x MLflow's
RPS_TARGET = 5.0  # aiprov 1-row throughput at 16 connections >= 5x MLflow's
VENV_BIN = Path(sys.executable).parent
ROW = [5.1, 3.5, 1.4, 0.2]
TOKEN = ["not-a-token"]
"""The bearer token every request sends: aiprov's bench user's, made by `prepare_aiprov` before any server runs."""


class BenchError(Exception):
    """A server or the load generator failed: the run is not a measurement."""


@dataclass
class Result:
    """One case: the medians of its runs (requests and errors summed over them)."""

    server: str
    case: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    rps_low: float
    rps_high: float
    cpu_us: float
    """Median CPU time (user + system) of the server's process tree per request, in microseconds."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train(out: Path) -> tuple[Path, Path]:
    """The seed's Iris decision tree, saved for aiprov (joblib) and for MLflow (its sklearn flavour, cloudpickle)."""
    import joblib
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(criterion="gini", max_depth=3, random_state=42).fit(x, y)
    aiprov_dir = out / "aiprov-model"
    aiprov_dir.mkdir()
    joblib.dump(model, aiprov_dir / "model.joblib")
    mlflow_dir = out / "mlflow-model"
    mlflow.sklearn.save_model(model, str(mlflow_dir), serialization_format="cloudpickle")
    return aiprov_dir, mlflow_dir


def wait_ready(url: str, body: bytes, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN[0]}"}
            r = httpx.post(url, content=body, headers=headers, timeout=30)
            if r.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise BenchError(f"server at {url} did not answer within {timeout:g} s:\n{log.read_text(errors='replace')[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MB."""
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU time of each of `pids` still running, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    times = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        times[p] = (int(fields[11]) + int(fields[12])) / tick
    return times


def parse_ms(text: str) -> float:
    """A wrk duration (`684.00us`, `8.93ms`, `1.02s`, `1.00m`) in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise BenchError(f"wrk printed a duration this harness cannot read: {text!r}")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def run_wrk(
    url: str, body_file: Path, connections: int, duration: float, script_dir: Path
) -> tuple[float, float, float, int, int]:
    """(requests/s, p50 ms, p99 ms, requests, non-2xx + socket errors) of one wrk run on core 1.

    Every request carries `Authorization: Bearer <token>`, as a hub's real callers send it (every server gets
    the same bytes; only aiprov checks the token).
    """
    script = script_dir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {TOKEN[0]}"\n'
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    command = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120, check=False)
    out = proc.stdout
    if proc.returncode != 0 or "Requests/sec" not in out:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stderr or out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = parse_ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = parse_ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (
        r"Non-2xx or 3xx responses: (\d+)",
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    ):
        m = re.search(pattern, out)
        if m:
            errors += sum(int(g) for g in m.groups())
    return rps, p50, p99, requests, errors


def cases(duration: float) -> list[tuple[str, int, float]]:
    return [("1 row", 1, duration), ("1 row", 16, duration), ("1000 rows", 1, duration), ("1000 rows", 16, duration)]


@dataclass
class Server:
    """A running server under test and the cases it is measured on."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    which: list[tuple[str, int, float]]


def sample(server: Server, body: Path, connections: int, seconds: float, work: Path) -> tuple[float, ...]:
    """One wrk run against `server`: `run_wrk`'s figures and the server tree's CPU microseconds per request."""
    pids = tree_pids(server.proc.pid)
    before = cpu_seconds(pids)
    rps, p50, p99, requests, errors = run_wrk(server.url, body, connections, seconds, work)
    after = cpu_seconds(pids)
    used = sum(after[p] - before[p] for p in after if p in before)
    return rps, p50, p99, requests, errors, used * 1e6 / max(requests, 1)


def measure(servers: Sequence[Server], bodies: dict[str, Path], duration: float, work: Path, runs: int) -> list[Result]:
    """Each case, interleaved over the servers it applies to: a warm-up of each, then `runs` rounds of one run each."""
    results = []
    for case, connections, seconds in cases(duration):
        on = [s for s in servers if (case, connections, seconds) in s.which]
        for server in on:  # warm: every model worker, caches, JIT paths
            run_wrk(server.url, bodies[case], connections, min(2.0, seconds), work)
        samples: dict[str, list[tuple[float, ...]]] = {s.name: [] for s in on}
        for _ in range(runs):
            for server in on:
                samples[server.name].append(sample(server, bodies[case], connections, seconds, work))
        for server in on:
            got = samples[server.name]
            rps, p50, p99, _, _, cpu_us = (statistics.median(column) for column in zip(*got, strict=True))
            low, high = min(g[0] for g in got), max(g[0] for g in got)
            n, errors = sum(int(g[3]) for g in got), sum(int(g[4]) for g in got)
            results.append(Result(server.name, case, connections, rps, p50, p99, n, errors, low, high, cpu_us))
    return results


def prepare_aiprov(model_dir: Path, work: Path) -> Path:
    """A hub holding the model and a caller with a `write` token (predict needs it); the token goes to TOKEN."""
    from aiprov.config import Container, Settings
    from aiprov.services.registry import PushRequest

    home = work / "aiprov-home"
    container = Container(Settings(home=home, actor="bench"))
    container.init()
    container.registry.push(model_dir, PushRequest(name="bench/iris"))
    TOKEN[0] = container.accounts.add_user("caller", scopes=["read", "write"]).token
    container.close()
    return home


def start_server(
    name: str,
    command: list[str],
    url: str,
    work: Path,
    bodies: dict[str, Path],
    which: Sequence[tuple[str, int, float]],
    *,
    env: dict[str, str] | None = None,
) -> Server:
    """Start the server `command` (its output to `<name>-serve.log`) and wait until `url` answers."""
    log = work / f"{name}-serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_ready(url, bodies["1 row"].read_bytes(), proc, log)
    except BaseException:
        stop(proc)
        raise
    return Server(name, url, proc, list(which))


def aiprov_env() -> dict[str, str]:
    """The environment of an aiprov server: one model worker unless AIPROV_WORKERS says otherwise, no AIPROV_HOME."""
    env = {**os.environ, "AIPROV_WORKERS": os.environ.get("AIPROV_WORKERS", "1")}
    env.pop("AIPROV_HOME", None)
    return env


def start_aiprov(home: Path, work: Path, bodies: dict[str, Path], duration: float) -> Server:
    port = free_port()
    command = [
        "taskset",
        "-c",
        "0",
        str(VENV_BIN / "aiprov"),
        "--home",
        str(home),
        "serve",
        "--port",
        str(port),
        "--no-access-log",
    ]
    url = f"http://127.0.0.1:{port}/api/v1/models/bench/iris/predict"
    return start_server("aiprov", command, url, work, bodies, cases(duration), env=aiprov_env())


def check_logged(home: Path, rows: list[Result]) -> str:
    """That every request aiprov answered is in its log (raises BenchError otherwise); a line saying so."""
    with sqlite3.connect(home / "registry.db") as db:
        logged = db.execute("SELECT count(*) FROM events WHERE action = 'inference'").fetchone()[0]
        checkpoints = db.execute("SELECT count(*) FROM log_checkpoints").fetchone()[0]
    sent = sum(r.requests for r in rows if r.server == "aiprov")
    if logged < sent:
        raise BenchError(f"usage events were lost: {logged} logged for {sent} requests")
    return (
        f"usage logging on: {logged} inference events in the log for >= {sent} measured requests (plus warm-ups),"
        f" {checkpoints} checkpoints signed"
    )


UNLOGGED_APP = """\
import sys

import uvicorn

from aiprov.api import create_app
from aiprov.api.connections import with_header_timeout
from aiprov.cli.serve import KEEP_ALIVE_S
from aiprov.config import Container, Settings
from aiprov.services.inference import InferenceService

container = Container(Settings(home=sys.argv[1], actor="bench"))
s = container.settings
# The one difference from `aiprov serve`: an inference service without a usage recorder, so nothing is logged.
container._serving.inference = InferenceService(
    container.checked_db, container.blobs, container.models, None, clock=container.clock, timeout_s=s.worker_timeout_s
)
http = with_header_timeout(s.header_timeout_s)
uvicorn.run(
    create_app(container), host="127.0.0.1", port=int(sys.argv[2]), http=http, access_log=False,
    timeout_keep_alive=KEEP_ALIVE_S,
)
"""


def start_unlogged(home: Path, work: Path, bodies: dict[str, Path], duration: float) -> Server:
    """aiprov as `aiprov serve` runs it (same app, protocol, token check, sandboxed worker), its predictions not
    logged: 1 row at 1 and 16 connections. What durable usage logging costs is the difference, in the same run.
    """
    (work / "unlogged_app.py").write_text(UNLOGGED_APP)
    port = free_port()
    command = ["taskset", "-c", "0", sys.executable, str(work / "unlogged_app.py"), str(home), str(port)]
    url = f"http://127.0.0.1:{port}/api/v1/models/bench/iris/predict"
    return start_server("unlogged", command, url, work, bodies, cases(duration)[:2], env=aiprov_env())


def start_mlflow(model_dir: Path, work: Path, bodies: dict[str, Path], duration: float) -> Server:
    port = free_port()
    command = ["taskset", "-c", "0", str(VENV_BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "-p", str(port)]
    command += ["--env-manager", "local"]
    # mlflow starts `uvicorn` by name: the venv's, even when this script was not run from an activated venv.
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"file://{work}/mlruns", "PATH": path}
    url = f"http://127.0.0.1:{port}/invocations"
    return start_server("mlflow", command, url, work, bodies, cases(duration), env=env)


FLOOR_APP = """\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"19")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"predictions":[0]}'})
"""


def start_floor(work: Path, bodies: dict[str, Path], duration: float) -> Server:
    """The bare ASGI app on uvicorn: 1 row at 1 and 16 connections (its answer does not depend on the body)."""
    (work / "floor_app.py").write_text(FLOOR_APP)
    port = free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(work)]
    command += ["--port", str(port), "--lifespan", "off", "--no-access-log"]
    url = f"http://127.0.0.1:{port}/"
    return start_server("floor", command, url, work, bodies, cases(duration)[:2])


def report(rows: list[Result], rss: dict[str, float]) -> None:
    head = ("server", "case", "conns", "req/s", "range", "p50 ms", "p99 ms", "cpu us/req", "requests", "errors")
    row = "{:<8} {:<10} {:>5} {:>9} {:>13} {:>8} {:>8} {:>10} {:>9} {:>6}"
    print(row.format(*head))
    for r in rows:
        cells = (
            r.server,
            r.case,
            r.connections,
            f"{r.rps:.0f}",
            f"{r.rps_low:.0f}-{r.rps_high:.0f}",
            f"{r.p50_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{r.cpu_us:.0f}",
            r.requests,
            r.errors,
        )
        print(row.format(*cells))
    for name, mb in rss.items():
        print(f"{name:<8} RSS after the load (server process tree): {mb:.0f} MB")

    def get(server: str, case: str, conns: int) -> Result:
        return next(r for r in rows if (r.server, r.case, r.connections) == (server, case, conns))

    def line(what: str, ratio: float, target: str, ok: bool | None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        print(f"ratio {what}: {ratio:.2f}x (target {target}) {verdict}".rstrip())

    a, m = get("aiprov", "1 row", 1), get("mlflow", "1 row", 1)
    line(
        "aiprov / mlflow p50 latency, 1 row, 1 connection",
        a.p50_ms / m.p50_ms,
        f"<= {P50_TARGET}x",
        a.p50_ms <= P50_TARGET * m.p50_ms,
    )
    a, m = get("aiprov", "1 row", 16), get("mlflow", "1 row", 16)
    line("aiprov / mlflow p50 latency, 1 row, 16 connections", a.p50_ms / m.p50_ms, "reported", None)
    line(
        "aiprov / mlflow throughput, 1 row, 16 connections",
        a.rps / m.rps,
        f">= {RPS_TARGET}x",
        a.rps >= RPS_TARGET * m.rps,
    )
    line(
        "mlflow / aiprov CPU per request, 1 row, 16 connections",
        m.cpu_us / a.cpu_us,
        f">= {RPS_TARGET}x: the throughput ratio on a dedicated core",
        m.cpu_us >= RPS_TARGET * a.cpu_us,
    )
    for conns in (1, 16):
        a, m = get("aiprov", "1000 rows", conns), get("mlflow", "1000 rows", conns)
        line(f"aiprov / mlflow throughput, 1000 rows, {conns} connection(s)", a.rps / m.rps, "reported", None)
    line("aiprov / mlflow RSS", rss["aiprov"] / rss["mlflow"], "reported", None)
    f, m, a = get("floor", "1 row", 1), get("mlflow", "1 row", 1), get("aiprov", "1 row", 1)
    line("floor / mlflow p50 latency, 1 row, 1 connection", f.p50_ms / m.p50_ms, "the best uvicorn gives", None)
    line("aiprov / floor p50 latency, 1 row, 1 connection", a.p50_ms / f.p50_ms, "reported", None)
    f, m, a = get("floor", "1 row", 16), get("mlflow", "1 row", 16), get("aiprov", "1 row", 16)
    line("floor / mlflow throughput, 1 row, 16 connections", f.rps / m.rps, "the best uvicorn gives", None)
    line("aiprov / floor throughput, 1 row, 16 connections", a.rps / f.rps, "reported", None)
    u, m, a = get("unlogged", "1 row", 16), get("mlflow", "1 row", 16), get("aiprov", "1 row", 16)
    line("unlogged / mlflow throughput, 1 row, 16 connections", u.rps / m.rps, "aiprov without usage logging", None)
    line("aiprov / unlogged throughput, 1 row, 16 connections", a.rps / u.rps, "the cost of durable logging", None)
    f = get("floor", "1 row", 16)
    line("mlflow / unlogged CPU per request, 1 row, 16 connections", m.cpu_us / u.cpu_us, "reported", None)
    line("mlflow / floor CPU per request, 1 row, 16 connections", m.cpu_us / f.cpu_us, "the best uvicorn gives", None)
    print(
        f"CPU per 1-row request at 16 connections: floor {f.cpu_us:.0f} us, unlogged {u.cpu_us:.0f} us,"
        f" aiprov {a.cpu_us:.0f} us (durable logging {a.cpu_us - u.cpu_us:.0f} us), mlflow {m.cpu_us:.0f} us"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per case instead of 10 (a smoke test)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per run")
    parser.add_argument(
        "--runs", type=int, default=None, help="measured runs per case, medians reported (3; 1 with --quick)"
    )
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    duration = args.duration or (2.0 if args.quick else 10.0)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (apt-get install -y {tool})", file=sys.stderr)
            return 1
    if (os.cpu_count() or 1) < 2:
        print("error: the benchmark needs 2 cores (server on core 0, wrk on core 1)", file=sys.stderr)
        return 1
    try:
        import mlflow  # noqa: F401
    except ImportError:
        print("error: mlflow is not installed (pip install mlflow): the baseline cannot run", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="aiprov-bench-serving-") as tmp:
        work = Path(tmp)
        aiprov_model, mlflow_model = train(work)
        bodies = {}
        for case, n in (("1 row", 1), ("1000 rows", 1000)):
            path = work / f"body-{n}.json"
            path.write_text(json.dumps({"inputs": [ROW] * n}))
            bodies[case] = path
        print(
            f"serving benchmark: {runs} interleaved run(s) of {duration:g} s per case and server, medians;"
            " servers on core 0, wrk on core 1;"
            ' bodies {"inputs": [[...]]}'
        )
        servers: list[Server] = []
        try:
            home = prepare_aiprov(aiprov_model, work)  # first: every server is sent the same token
            servers.append(start_mlflow(mlflow_model, work, bodies, duration))
            servers.append(start_aiprov(home, work, bodies, duration))
            servers.append(start_unlogged(home, work, bodies, duration))
            servers.append(start_floor(work, bodies, duration))
            rows = measure(servers, bodies, duration, work, runs)
            rss = {s.name: tree_rss_mb(s.proc.pid) for s in servers if s.name in ("aiprov", "mlflow")}
            note = check_logged(home, rows)
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        finally:
            for server in servers:
                stop(server.proc)
        report(rows, rss)
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
