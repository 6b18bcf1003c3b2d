"""`huggingface_hub.snapshot_download` from aiprov against the same files from a static file server, same run.

    python benchmarks/bench_hf.py [--quick] [--runs N] [--data-dir DIR]

A model directory of 4 x 256 MiB random files (--quick: 4 x 16 MiB; the one bench_s3.py makes, reused) is pushed
into a fresh home, which `aiprov serve` then serves on a free local port (one uvicorn process, usage logging on).
The peer is the same bytes (hard links to the model's files) behind Starlette's `StaticFiles` on the same uvicorn,
one process: `resolve/<commit>/<file>` and the `api/models/.../revision/main` answer aiprov gave, as files, plus
the `X-Repo-Commit` header the client requires. No hashing, no token check, no registry, no log.

Each run is one `snapshot_download(repo, endpoint=URL, token=T, cache_dir=<fresh>)` in this process (what
`HF_ENDPOINT` and `HF_TOKEN` set; both servers are sent the token of a user made for the run, only aiprov checks
it), the cache removed afterwards (not timed). aiprov hashes every byte it sends against the manifest before the
last one leaves (a file whose bytes changed is cut short), and records each file as a usage event. A third row adds
`aiprov --server URL verify --hf-cache CACHE` after aiprov's download (a separate process: every file re-hashed on
the client, the manifest and its log inclusion proven), timed together. The servers run in turn, run after run;
one warm-up round, then medians of 3 (--quick: 1). Target: aiprov's throughput >= 0.7x the static server's.
Exits 0 when everything ran, whatever the ratio. `main(argv)` is what benchmarks/run.py calls.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench_cid import make_model
from bench_s3 import FILES, FULL_MIB, QUICK_MIB, MiB
from common import free_port, serve

HERE = Path(__file__).resolve().parent
TARGET = 0.7
REPO = "bench/model"
ROOT_ENV = "AIPROV_BENCH_STATIC_ROOT"
COMMIT_ENV = "AIPROV_BENCH_STATIC_COMMIT"


def static_hub() -> Any:
    """The peer's ASGI app (a uvicorn factory): StaticFiles over the folder ROOT_ENV names, X-Repo-Commit added."""
    from starlette.staticfiles import StaticFiles
    from starlette.types import Message, Receive, Scope, Send

    files = StaticFiles(directory=os.environ[ROOT_ENV])
    commit = os.environ[COMMIT_ENV].encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def with_commit(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-repo-commit", commit)]
            await send(message)

        await files(scope, receive, with_commit)

    return app


def prepare_aiprov(model: Path, home: Path) -> str:
    """A home holding `model` as bench/model and a reader; returns the reader's token."""
    from aiprov.config import Container, Settings
    from aiprov.services.registry import PushRequest

    container = Container(Settings(home=home, actor="bench"))
    container.init()
    container.registry.push(model, PushRequest(name=REPO))
    token = container.accounts.add_user("caller", scopes=["read"]).token
    container.close()
    return token


def prepare_static(model: Path, root: Path, hub_url: str, token: str) -> str:
    """The files the peer serves: the model's files (hard links) under the commit, and aiprov's answers to the two
    listings snapshot_download asks for (the model at `main`, its tree at the commit). Returns the commit id."""
    headers = {"authorization": f"Bearer {token}"}
    info = httpx.get(f"{hub_url}/api/models/{REPO}/revision/main", headers=headers).raise_for_status().json()
    commit: str = info["sha"]
    tree = httpx.get(f"{hub_url}/api/models/{REPO}/tree/{commit}", params={"recursive": "true"}, headers=headers)
    resolve = root / REPO / "resolve" / commit
    resolve.mkdir(parents=True)
    for sibling in info["siblings"]:
        os.link(model / sibling["rfilename"], resolve / sibling["rfilename"])
    api = root / "api" / "models" / REPO
    for path, answer in ((api / "revision" / "main", info), (api / "tree" / commit, tree.raise_for_status().json())):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(answer))
    return commit


def serve_static(root: Path, commit: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "--factory", "bench_hf:static_hub"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--no-access-log", "--timeout-keep-alive", "5"],
        env={**env, ROOT_ENV: str(root), COMMIT_ENV: commit},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/models/{REPO}/revision/main", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the static file server did not answer within 60 s")


def download(url: str, token: str, cache: Path, size: int) -> tuple[float, Path]:
    """Seconds of one snapshot_download into the fresh `cache`, and the snapshot folder."""
    from huggingface_hub import snapshot_download

    start = time.perf_counter()
    folder = Path(snapshot_download(REPO, endpoint=url, token=token, cache_dir=cache))
    seconds = time.perf_counter() - start
    got = sum(p.stat().st_size for p in folder.iterdir())
    if got != size:
        raise RuntimeError(f"snapshot_download from {url} gave {got} bytes, not {size}")
    return seconds, folder


def verify_cache(url: str, token: str, cache: Path, client_home: Path, env: dict[str, str]) -> float:
    client = [sys.executable, "-m", "aiprov", "--home", str(client_home), "--server", url, "--token", token]
    start = time.perf_counter()
    done = subprocess.run(
        [*client, "verify", "--hf-cache", str(cache)],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"aiprov verify --hf-cache failed: {done.stderr.strip() or done.stdout.strip()}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{FILES} x {QUICK_MIB} MiB and one run: a smoke test")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per server (default 3, quick 1)")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data")
    args = parser.parse_args(argv)
    mib = QUICK_MIB if args.quick else FULL_MIB
    runs = args.runs or (1 if args.quick else 3)
    model = args.data_dir / "s3" / f"model-{FILES}x{mib}mib"
    for i in range(FILES):
        make_model(model / f"part-{i}.bin", mib * MiB)
    size = FILES * mib * MiB
    scratch = args.data_dir / "hf"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = {**os.environ, "AIPROV_WORKERS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    for name in [k for k in env if k.startswith("AIPROV_") and k != "AIPROV_WORKERS"] + ["HF_ENDPOINT", "HF_TOKEN"]:
        env.pop(name, None)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    token = prepare_aiprov(model, scratch / "home")
    hub, hub_url = serve(scratch / "home", env)
    processes = [hub]
    samples: dict[str, list[float]] = {"static": [], "aiprov": [], "aiprov+verify": []}
    try:
        commit = prepare_static(model, scratch / "static", hub_url, token)
        peer, peer_url = serve_static(scratch / "static", commit, env)
        processes.append(peer)
        what = f"snapshot_download of a {FILES}x{mib} MiB model, {runs} run(s) per server, median"
        print(f"{what}; nproc {os.cpu_count()}")
        for round_ in range(runs + 1):  # the first round warms the page cache, the servers and the imports
            for name, url in (("static", peer_url), ("aiprov", hub_url)):
                cache = scratch / f"cache-{name}"
                seconds, _ = download(url, token, cache, size)
                if name == "aiprov":
                    checked = seconds + verify_cache(url, token, cache, scratch / "client", env)
                shutil.rmtree(cache)
                if round_:
                    samples[name].append(seconds)
                    if name == "aiprov":
                        samples["aiprov+verify"].append(checked)
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)
    medians = {name: statistics.median(s) for name, s in samples.items()}
    rows = {
        "static": "static files (uvicorn)",
        "aiprov": "aiprov serve",
        "aiprov+verify": "aiprov + verify --hf-cache",
    }
    print(f"{'server':<28} {'median s':>9} {'GB/s':>6}")
    for name, seconds in medians.items():
        print(f"{rows[name]:<28} {seconds:>9.3f} {size / seconds / 1e9:>6.2f}")
    label = f"{FILES}x{mib} MiB"
    ratio = medians["static"] / medians["aiprov"]
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(
        f"ratio aiprov snapshot_download throughput / static file server [{label}]: {ratio:.2f}x "
        f"(target >= {TARGET}x) {verdict}"
    )
    checked = medians["static"] / medians["aiprov+verify"]
    print(
        f"ratio aiprov snapshot_download + verify --hf-cache throughput / static file server [{label}]: {checked:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    sys.exit(main())
