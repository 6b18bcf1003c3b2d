"""Run as a process: open a writer on a store, write SIZE bytes, say so, and wait to be killed."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from aiprov.adapters.blob_local import LocalBlobStore
from aiprov.ports import BlobStore


def main(kind: str, where: str, scratch: str, size: int) -> None:
    store: BlobStore
    if kind == "local":
        store = LocalBlobStore(Path(where))
    else:
        from boto3.s3.transfer import TransferConfig

        from aiprov.adapters.blob_s3 import S3BlobStore

        part = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
        store = S3BlobStore.from_environment(where, Path(scratch), part)
    writer = store.writer()
    writer.write(os.urandom(size))
    print("written", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
