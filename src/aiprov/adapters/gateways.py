"""Fetching a DAG's blocks from IPFS trustless gateways (httpx), trusting none of them.

Per the Trustless Gateway spec, a gateway answers `GET /ipfs/{cid}` with `Accept: application/vnd.ipld.car`
(`?format=car`) by a CARv1 of the DAG, and with `Accept: application/vnd.ipld.raw` (`?format=raw`) by the one
block whose hash is in the CID. Every block is checked against its CID the moment it has arrived, before it is
kept; a block that does not match, a malformed answer, an error status or a stall (no block completed within
the timeout) makes the gateway *skipped*: a one-line reason is reported and the next gateway is tried. Blocks
that did check out are kept whoever sent them (they are content-addressed), so a gateway that fails half-way
costs only what is left. Blocks a CAR left out are asked for one by one as raw blocks.

A leaf's file bytes go to disk as they arrive (`DataFiles`): at the place a plan predicts (the files of the
expected manifest, in order: where gateways that send each file's leaves in order put them), else to a spool.
Only the few bytes of UnixFS framing around each leaf and the inner nodes stay in memory, so a 1 GiB model
costs a few MiB of memory and, when the plan was right, no second copy on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from aiprov.adapters.car_file import MAX_BLOCK
from aiprov.core import car
from aiprov.core.unixfs import RAW, Cid, leaf_span
from aiprov.errors import BackendError, IntegrityError, InvalidInput

CAR_TYPE = "application/vnd.ipld.car"
RAW_TYPE = "application/vnd.ipld.raw"
DEFAULT_TIMEOUT_S = 30.0


class GatewaySkipped(Exception):
    """Raised inside the fetcher when one gateway fails; carries the one-line reason it is skipped.

    `status`: the HTTP status it answered instead of 200 (a refusal, e.g. 404 for a block it lacks or 406 for a
    CAR it does not make), which is no lie. `altered`: it sent a block that does not hash to its CID.
    """

    def __init__(self, reason: str, *, status: int | None = None, altered: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.altered = altered


@dataclass(frozen=True, slots=True)
class Skipped:
    """A gateway that was given up on, and why (one line)."""

    gateway: str
    reason: str
    altered: bool = False
    """It sent a block that does not hash to its CID (it lied, or its storage is corrupted)."""

    def to_json(self) -> dict[str, object]:
        return {"gateway": self.gateway, "reason": self.reason, "altered": self.altered}

    def __str__(self) -> str:
        return f"gateway {self.gateway} skipped: {self.reason}"


def gateway_base(url: str) -> str:
    """A gateway's base URL (`http://host:port[/prefix]`), checked; `/ipfs/{cid}` is appended to it.

    Raises InvalidInput for anything but an http(s) URL with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url!r} is not a gateway URL", hint="expected http(s)://HOST[:PORT], e.g. https://ipfs.io")
    path = parts.path.rstrip("/")
    if path.endswith("/ipfs"):
        path = path[: -len("/ipfs")]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class _Reader:
    """Exact reads over an HTTP body's chunks, failing as a stall when no block completed within `timeout_s`."""

    def __init__(self, chunks: Iterator[bytes], timeout_s: float) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._pos = 0
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s

    def progressed(self) -> None:
        self.deadline = time.monotonic() + self.timeout_s

    def _fill(self, need: int) -> bool:
        while len(self._buffer) - self._pos < need:
            if time.monotonic() > self.deadline:
                raise GatewaySkipped(f"stalled: no block arrived within {self.timeout_s:g} s")
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            if self._pos:
                del self._buffer[: self._pos]
                self._pos = 0
            self._buffer += chunk
        return True

    def exactly(self, n: int) -> bytes:
        if not self._fill(n):
            raise GatewaySkipped("the CAR is cut short")
        with memoryview(self._buffer) as view, view[self._pos : self._pos + n] as piece:
            out = bytes(piece)  # one copy; the views are released before the buffer grows again
        self._pos += n
        return out

    def rest(self, limit: int) -> bytes:
        """Everything up to the end of the body (at most `limit` bytes, else the gateway is skipped)."""
        while self._fill(len(self._buffer) - self._pos + 1):
            if len(self._buffer) - self._pos > limit:
                raise GatewaySkipped(f"sent more than {limit} bytes for one block")
        out = bytes(self._buffer[self._pos :])
        self._pos = len(self._buffer)
        return out

    def varint(self) -> int | None:
        """The next varint, or None at a clean end of the body."""
        value = shift = 0
        while True:
            if not self._fill(1):
                if shift:
                    raise GatewaySkipped("the CAR is cut short inside a section length")
                return None
            b = self._buffer[self._pos]
            self._pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise GatewaySkipped("malformed CAR: an overlong varint")


WRITE_QUEUE = 16
"""Leaves waiting for the writer thread at most (16 x 256 KiB = 4 MiB)."""
NODE_MEMORY = 256 * 1024 * 1024
"""At most this many bytes of inner nodes (file nodes, directories) are held: far more than any model needs."""


@dataclass(frozen=True, slots=True)
class Target:
    """A file the plan expects: where its bytes go and how many there are; `scratch` files are removed at exit."""

    path: Path
    size: int
    scratch: bool = False


class DataFiles:
    """The files leaf bytes are written into as they arrive: the planned targets in order, then a spool.

    `put` writes each leaf at the next free place: the current target if the leaf fits in what is left of it
    (else the next target), past the last target the spool. The writes happen on a writer thread, a few leaves
    behind (`WRITE_QUEUE`), so receiving, checking and hashing the next blocks overlap with the disk. The
    SHA-256 of a target is kept while its bytes arrive in order from its start. A context manager: the spool
    and scratch targets are removed on exit.
    """

    def __init__(self, targets: list[Target], spool: Path) -> None:
        self.targets = targets
        self.spool = spool
        self._queue: queue.Queue[tuple[int, bytes | memoryview, int] | None] = queue.Queue(WRITE_QUEUE)
        self._writer: threading.Thread | None = None
        self._failure: OSError | None = None
        self._fds: list[int] = []
        self._used = [0] * (len(targets) + 1)
        self._current = 0
        self._hashers = [hashlib.sha256() for _ in range(len(targets) + 1)]
        self._hashed = [0] * (len(targets) + 1)
        self._taken: set[int] = set()

    @property
    def spool_index(self) -> int:
        return len(self.targets)

    def __enter__(self) -> DataFiles:
        try:
            for path in [t.path for t in self.targets] + [self.spool]:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fds.append(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644))
        except OSError as e:
            self.__exit__()
            raise InvalidInput(f"cannot write {e.filename}: {e.strerror}") from e
        self._writer = threading.Thread(target=self._write_loop, name="aiprov-ipfs-writer", daemon=True)
        self._writer.start()
        return self

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            fd, data, offset = item
            if self._failure is None:
                try:
                    os.pwrite(fd, data, offset)
                except OSError as e:
                    self._failure = e
            self._queue.task_done()
        self._queue.task_done()

    def flush(self) -> None:
        """Wait until every leaf put so far is written. Raises BackendError if a write failed."""
        self._queue.join()
        self._raise()

    def _raise(self) -> None:
        if self._failure is not None:
            raise BackendError(f"cannot write the fetched files: {self._failure.strerror}")

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        paths = [t.path for t in self.targets if t.scratch] + ([] if self.spool_index in self._taken else [self.spool])
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def put(self, data: bytes | memoryview) -> tuple[int, int]:
        """Write a leaf's bytes; return (target index, offset) where they are. Raises BackendError (disk)."""
        n = len(data)
        while self._current < len(self.targets) and self._used[self._current] + n > self.targets[self._current].size:
            self._current += 1
        index = self._current
        if index < len(self.targets) and self._used[index] + n == self.targets[index].size:
            self._current += 1  # full: the next leaf starts the next file
        offset = self._used[index]
        self._raise()
        self._queue.put((self._fds[index], data, offset))
        self._used[index] += n
        if self._hashed[index] == offset:
            self._hashers[index].update(data)
            self._hashed[index] += n
        return index, offset

    def read(self, index: int, offset: int, length: int) -> bytes:
        self.flush()
        return os.pread(self._fds[index], length, offset)

    def sha256(self, index: int) -> str | None:
        """The SHA-256 (hex) of target `index` if its bytes arrived in order and fill it exactly, else None."""
        if self._hashed[index] != self._used[index] or self._used[index] != self.targets[index].size:
            return None
        return self._hashers[index].hexdigest()

    def sync(self, index: int) -> None:
        """Truncate target `index` to its planned size (as written) and fsync it."""
        self.flush()
        os.ftruncate(self._fds[index], self._used[index])
        os.fsync(self._fds[index])

    def take_spool(self, target: Path) -> None:
        """Fsync the spool and rename it to `target` (the spool held exactly one whole file, in order)."""
        index = self.spool_index
        self.flush()
        os.fsync(self._fds[index])
        os.replace(self.spool, target)
        self._taken.add(index)

    def spool_sha256(self) -> str | None:
        index = self.spool_index
        return self._hashers[index].hexdigest() if self._hashed[index] == self._used[index] else None

    @property
    def spooled(self) -> int:
        return self._used[self.spool_index]


@dataclass(frozen=True, slots=True)
class Leaf:
    """Where a leaf's file bytes were written (`DataFiles` index and offset) and the framing around them."""

    index: int
    offset: int
    length: int
    prefix: bytes
    suffix: bytes


@dataclass
class GatewayBlocks:
    """The checked blocks of one DAG fetched from `gateways` (tried in order); leaf bytes go to `sink`.

    Use as a context manager. `block(cid)` (a `car_file.BlockSource`) answers from what arrived, asking the
    gateways for a raw block it lacks. `on_skip` hears of each gateway given up on.
    """

    root: Cid
    gateways: list[str]
    sink: DataFiles
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_bytes: int | None = None
    """Refuse more than this many block bytes in all (a gateway padding a CAR with unrelated blocks)."""
    on_skip: Callable[[Skipped], None] | None = None
    skipped: list[Skipped] = field(default_factory=list)
    nodes: dict[Cid, bytes] = field(default_factory=dict)
    leaves: dict[Cid, Leaf] = field(default_factory=dict)
    received: int = 0
    _node_bytes: int = 0
    _client: httpx.Client | None = None
    _bad: set[str] = field(default_factory=set)

    def __enter__(self) -> GatewayBlocks:
        self.gateways = [gateway_base(g) for g in self.gateways]
        if not self.gateways:
            raise InvalidInput("no gateway to fetch from", hint="give --gateway URL (repeatable)")
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s), follow_redirects=True, headers={"User-Agent": "aiprov"}
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    # what the unpacker asks for ---------------------------------------------------------------------------

    def block(self, cid: Cid) -> bytes:
        """The block `cid` names, checked. Raises BackendError (IntegrityError) when no gateway left has it."""
        if cid not in self.nodes and cid not in self.leaves:
            self._fetch_raw(cid)
        node = self.nodes.get(cid)
        if node is not None:
            return node
        leaf = self.leaves[cid]
        return leaf.prefix + self.sink.read(leaf.index, leaf.offset, leaf.length) + leaf.suffix

    def leaf(self, cid: Cid) -> Leaf | None:
        """Where leaf `cid`'s bytes are (fetched raw first if it has not arrived); None for an inner node."""
        if cid not in self.nodes and cid not in self.leaves:
            self._fetch_raw(cid)
        return self.leaves.get(cid)

    def prefetch(self) -> None:
        """Ask the gateways in turn for a CAR of the whole DAG until one sends it whole, every block checked.

        A gateway that lies, stalls or fails is skipped (reported); what it sent that checked out is kept. One
        that answers a CAR request with an error status is not skipped: it may still serve raw blocks.
        """
        for gateway in self._usable():
            try:
                self._car(gateway)
                return
            except GatewaySkipped as e:
                if e.status is None:
                    self._skip(gateway, str(e), altered=e.altered)

    # internals --------------------------------------------------------------------------------------------

    def _usable(self) -> list[str]:
        return [g for g in self.gateways if g not in self._bad]

    def _skip(self, gateway: str, reason: str, *, altered: bool) -> None:
        self._bad.add(gateway)
        skipped = Skipped(gateway, reason, altered)
        self.skipped.append(skipped)
        if self.on_skip is not None:
            self.on_skip(skipped)

    @contextlib.contextmanager
    def _get(self, gateway: str, cid: Cid, media: str, fmt: str) -> Iterator[httpx.Response]:
        assert self._client is not None
        url = f"{gateway}/ipfs/{cid}"
        params = {"format": fmt, **({"dag-scope": "all"} if fmt == "car" else {})}
        accept = f"{CAR_TYPE}; version=1; order=dfs; dups=n" if fmt == "car" else RAW_TYPE
        try:
            with self._client.stream("GET", url, params=params, headers={"Accept": accept}) as response:
                if response.status_code != 200:
                    raise GatewaySkipped(f"answered {response.status_code} for {cid}", status=response.status_code)
                got = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if got != media:
                    raise GatewaySkipped(f"answered {got or 'no content type'} for {cid}, not {media}")
                yield response
        except httpx.TimeoutException:
            raise GatewaySkipped(f"stalled: no answer within {self.timeout_s:g} s") from None
        except httpx.TransportError as e:
            raise GatewaySkipped(f"cannot be reached ({type(e).__name__})") from None

    def _car(self, gateway: str) -> None:
        with self._get(gateway, self.root, CAR_TYPE, "car") as response:
            reader = _Reader(response.iter_bytes(), self.timeout_s)
            length = reader.varint()
            if length is None or length > 1 << 20:
                raise GatewaySkipped("sent something that is not a CARv1")
            try:
                car.parse_header(reader.exactly(length))
            except InvalidInput as e:
                raise GatewaySkipped(f"sent a bad CAR header: {e.message}") from None
            while (size := reader.varint()) is not None:
                if size > MAX_BLOCK + 64:
                    raise GatewaySkipped(f"sent a {size}-byte CAR section, more than any IPFS block")
                section = reader.exactly(size)
                try:
                    cid, offset = Cid.read(section, 0)
                except InvalidInput as e:
                    raise GatewaySkipped(f"sent a CAR section with a bad CID: {e.message}") from None
                self._keep(cid, memoryview(section)[offset:])
                reader.progressed()

    def _fetch_raw(self, cid: Cid) -> None:
        for gateway in self._usable():
            try:
                with self._get(gateway, cid, RAW_TYPE, "raw") as response:
                    reader = _Reader(response.iter_bytes(), self.timeout_s)
                    data = reader.rest(MAX_BLOCK)
                self._keep(cid, memoryview(data))
                return
            except GatewaySkipped as e:
                if e.status == 404:
                    continue  # this gateway lacks the block: not a fault, try the next one
                self._skip(gateway, str(e), altered=e.altered)
        reasons = "; ".join(f"{s.gateway}: {s.reason}" for s in self.skipped) or "none has it"
        message = f"no gateway could serve block {cid} of {self.root} ({reasons})"
        hint = "give another --gateway that has the model"
        if self.skipped and len(self.skipped) == len(self.gateways) and all(s.altered for s in self.skipped):
            raise IntegrityError(message, hint=hint)
        raise BackendError(message, hint=hint)

    def _keep(self, cid: Cid, block: memoryview) -> None:
        """Check `block` against `cid` and keep it (once): a leaf's bytes to the sink, an inner node in memory.

        A mismatch, or more bytes than the DAG can hold, skips the gateway.
        """
        if len(block) > MAX_BLOCK:
            raise GatewaySkipped(f"sent a {len(block)}-byte block {cid}, more than any IPFS node sends")
        if hashlib.sha256(block).digest() != cid.digest:
            raise GatewaySkipped(f"sent block {cid} with bytes that do not hash to its CID (altered)", altered=True)
        if cid in self.nodes or cid in self.leaves:
            return
        if self.max_bytes is not None and self.received + len(block) > self.max_bytes:
            raise GatewaySkipped(f"sent more than the {self.max_bytes} bytes this DAG can hold")
        self.received += len(block)
        if cid.codec == RAW:
            span: tuple[int, int] | None = (0, len(block))
        else:
            try:
                span = leaf_span(block)
            except InvalidInput:
                span = None  # authentic bytes that are no UnixFS node: the unpacker refuses them if it needs them
        if span is None:
            if self._node_bytes + len(block) > NODE_MEMORY:
                raise GatewaySkipped(f"sent more than {NODE_MEMORY} bytes of inner nodes")
            self.nodes[cid] = bytes(block)
            self._node_bytes += len(block)
            return
        index, offset = self.sink.put(block[span[0] : span[1]])
        self.leaves[cid] = Leaf(index, offset, span[1] - span[0], bytes(block[: span[0]]), bytes(block[span[1] :]))


def spool_path(near: Path) -> Path:
    """A fresh hidden spool file name in `near` (a directory on the destination's file system)."""
    return near / f".aiprov-ipfs-{secrets.token_hex(6)}.spool"
