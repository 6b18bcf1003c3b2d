"""Helia (npm `helia`, `@helia/unixfs`, `@helia/car`, `@helia/verified-fetch`) driven from the tests.

`tests/ipfs/js/helia.mjs` is a Helia node over a memory blockstore: it adds files with Kubo's parameters, imports
CARs, serves a trustless gateway (honest, lying, or raw blocks only) and the Kubo RPC routes a pinning client
uses. `tests/ipfs/js/verified_fetch.mjs` fetches files with `@helia/verified-fetch`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.ipfs.jstools import node

JS = Path(__file__).resolve().parent / "js"
HELIA = JS / "helia.mjs"


def _run(script: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node(), str(script), *args], capture_output=True, text=True, check=False, timeout=timeout)


def helia_add(path: Path, version: int) -> dict[str, Any]:
    """`{"root": CID, "files": {path: CID}}` as Helia's `@helia/unixfs` adds `path` with Kubo's parameters."""
    out = _run(HELIA, "add", str(version), str(path))
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def helia_import(car: Path, out: Path) -> list[str]:
    """Import a CAR into Helia (`@helia/car`), write its files under `out` (`@helia/unixfs`); return the roots."""
    done = _run(HELIA, "import", str(car), str(out))
    assert done.returncode == 0, done.stderr
    roots: list[str] = json.loads(done.stdout)["roots"]
    return roots


def verified_fetch(gateway: str, out: Path, cid: str, paths: list[str]) -> None:
    """Fetch `ipfs://cid/path` for each path with `@helia/verified-fetch` from `gateway`, into `out/path`."""
    done = _run(JS / "verified_fetch.mjs", gateway, str(out), cid, *paths)
    assert done.returncode == 0, done.stderr


@dataclass
class HeliaServer:
    url: str
    info: dict[str, Any]
    process: subprocess.Popen[str]

    @property
    def root(self) -> str:
        root: str = self.info["root"]
        return root


@contextmanager
def helia_server(*args: str) -> Iterator[HeliaServer]:
    """Run `helia.mjs ARGS` (`serve …` or `rpc`) until the block ends; yields its URL and what it printed.

    Its stderr goes to a file (a pipe nobody reads could fill and stall it), shown if it fails to start.
    """
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [node(), str(HELIA), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                process.wait(10)
                errors.seek(0)
                raise AssertionError(f"helia.mjs {' '.join(args)} exited {process.returncode}: {errors.read()}")
            info = json.loads(line)
            yield HeliaServer(info.pop("url"), info, process)
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def stalled_gateway(trickle: bytes | None = None) -> Iterator[str]:
    """A server that accepts connections, reads the request, and never answers (a gateway that stalls).

    With `trickle`, it answers 200 with a CAR content type and sends those bytes, then one zero byte every
    0.2 s forever: a gateway that keeps the connection alive without ever completing a block.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        conn.recv(65536)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ipld.car\r\nContent-Length: 100000000\r\n\r\n"
        try:
            conn.sendall(head + (trickle or b""))
            while not stop.wait(0.2):
                conn.sendall(b"\0")
        except OSError:
            return

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            if trickle is not None:
                threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
