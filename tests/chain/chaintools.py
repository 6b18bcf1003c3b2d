"""A real anvil for the chain tests, its funded dev accounts, and the CLI run with chain settings."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support import free_port
from tests.support.cli import Ran, cli
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"

# anvil's default dev accounts (from its public test mnemonic "test test … junk"), each funded with 10,000 ETH.
OPERATOR_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
THIRD_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
ANVIL_CHAIN_ID = 31337


@dataclass
class Anvil:
    url: str
    process: subprocess.Popen[bytes]
    w3: Web3 = field(init=False)

    def __post_init__(self) -> None:
        self.w3 = Web3(HTTPProvider(self.url))

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in response, response
        return response.get("result")

    def tx_count(self, key: str) -> int:
        return self.w3.eth.get_transaction_count(self.w3.eth.account.from_key(key).address)

    def pool(self) -> list[str]:
        """Hashes of the transactions waiting in anvil's pool."""
        content = self.rpc("txpool_content")["pending"]
        return [tx["hash"] for by_nonce in content.values() for tx in by_nonce.values()]


def start_anvil(*options: str) -> Anvil:
    """Start anvil on a free port of 127.0.0.1 and wait until it answers; raise with its output if it does not."""
    if not ANVIL.exists():
        raise RuntimeError(f"anvil is missing at {ANVIL}: run `npm ci --no-audit --no-fund` in {ROOT}")
    port = free_port()
    process = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the npm wrapper (node) runs the real binary as a child
    )
    anvil = Anvil(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"anvil exited with {process.returncode}: {output}")
        try:
            if anvil.w3.eth.chain_id == ANVIL_CHAIN_ID:
                return anvil
        except Exception:  # not listening yet
            time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"anvil did not answer on {anvil.url} within 30 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill anvil's process group (the node wrapper and the anvil binary it started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def chain_env(anvil: Anvil, key: str | None = OPERATOR_KEY, **extra: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "AIPROV_ACTOR": "alice",
        "AIPROV_CHAIN_RPC": anvil.url,
        "AIPROV_CHAIN_PRIVATE_KEY": key,
        "AIPROV_CHAIN_CONTRACT": None,
        "AIPROV_CHAIN_ID": None,
    }
    env.update(extra)
    return env


def run(home: Path, env: dict[str, str | None], *args: str) -> Ran:
    """`aiprov --home HOME ARGS…` with the chain settings in `env` (None unsets a variable): `cli` with them."""
    return cli(home, *args, env=env)


def run_json(home: Path, env: dict[str, str | None], *args: str) -> Any:
    return run(home, env, *args, "--json").json()


class RangeLimitedRpc:
    """A JSON-RPC relay to anvil that refuses eth_getLogs over more than `max_blocks` blocks, as public providers do.

    Use as a context manager; `url` is the relay's address, `refused` counts the refusals.
    """

    def __init__(self, upstream: str, max_blocks: int) -> None:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = json.loads(body)
                params = request.get("params") or [{}]
                if request.get("method") == "eth_getLogs" and relay.too_wide(params[0], max_blocks):
                    relay.refused += 1
                    error = {"code": -32005, "message": f"query exceeds max block range {max_blocks}"}
                    answer = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "error": error}).encode()
                else:
                    forwarded = urllib.request.Request(upstream, body, {"Content-Type": "application/json"})
                    with urllib.request.urlopen(forwarded, timeout=30) as response:
                        answer = response.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.refused = 0
        self.upstream = upstream
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def too_wide(self, query: dict[str, Any], max_blocks: int) -> bool:
        def number(tag: str) -> int:
            if tag == "latest":
                return int(Web3(HTTPProvider(self.upstream)).eth.block_number)
            return int(tag, 16)

        return number(query.get("toBlock", "latest")) - number(query.get("fromBlock", "0x0")) + 1 > max_blocks

    def __enter__(self) -> RangeLimitedRpc:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
