"""Gas used by AiprovRegistry on a real anvil: deployment, registrations, anchors, and the cost per logged event.

    python benchmarks/chain_gas.py [--json]

Starts `node_modules/.bin/anvil` (run `npm ci` first) on a free port, sends each transaction through aiprov's
chain adapter, and reads `gasUsed` from the receipts. Gas is deterministic for given inputs, so one run is
enough; docs/chain.md quotes these numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiprov.adapters.chain import Chain, parse_private_key
from common import free_port

ROOT = Path(__file__).resolve().parents[1]
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
# anvil's first default dev account (public test mnemonic), funded on every anvil.
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
BATCHES = (1, 100, 10_000)
CID = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@contextmanager
def running_anvil() -> Iterator[str]:
    """A fresh anvil on a free port of 127.0.0.1, stopped (with its npm wrapper) on exit; yields its URL."""
    port = free_port()
    # Its own process group: the npm wrapper (node) runs the anvil binary as a child, and both must stop.
    anvil = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("anvil did not start within 30 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(anvil.pid, signal.SIGKILL)
        anvil.wait()


def measure(url: str) -> dict[str, Any]:
    chain = Chain(url, account=parse_private_key(KEY, "anvil's dev key"))
    deploy = chain.deploy()
    address = deploy.contract_address
    assert address is not None
    origin = "hub.example.org/aiprov"
    register_short = chain.register(address, sha("v1"), sha("m1"), "aiprov:alice/iris@1").gas_used
    register_cid = chain.register(address, sha("v2"), sha("m2"), CID).gas_used
    first_anchor = chain.anchor(address, origin, 2, sha("root 2")).gas_used
    next_anchor = chain.anchor(address, origin, 1_000_002, sha("root 1000002")).gas_used
    return {
        "deploy": deploy.gas_used,
        "register (aiprov:alice/iris@1)": register_short,
        "register (ipfs://CIDv1)": register_cid,
        "anchor (first of an origin)": first_anchor,
        "anchor (later)": next_anchor,
        "anchor per event": {str(n): round(next_anchor / n, 2) for n in BATCHES},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if not ANVIL.exists():
        print(f"anvil is missing at {ANVIL}: run `npm ci --no-audit --no-fund`", file=sys.stderr)
        return 1
    with running_anvil() as url:
        result = measure(url)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for name, gas in result.items():
        if isinstance(gas, dict):
            for n, per in gas.items():
                print(f"{name + f' (N={n})':<40} {per:>12,.2f} gas")
        else:
            print(f"{name:<40} {gas:>12,} gas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
