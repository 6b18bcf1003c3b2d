"""Fetching a DAG's blocks from IPFS trustless gateways (httpx), trusting none of them.

Per the Trustless Gateway spec, a gateway answers `GET /ipfs/{cid}` with `Accept: application/vnd.ipld.car`
(`?format=car`) by a CARv1 of the DAG, and with `Accept: application/vnd.ipld.raw` (`?format=raw`) by the one
block whose hash is in the CID. Every block is checked against its CID the moment it has arrived, before it is
kept; a block that does not match, a malformed answer, an error status or a stall (no block completed within
the timeout) makes the gateway *skipped*: a one-line reason is reported and the next gateway is tried. Blocks
that did check out are kept whoever sent them (they are content-addressed), so a gateway that fails half-way
costs only what is left.

Checked blocks are kept in a spool file on disk (itself a CARv1), indexed by CID: memory holds one block and the
index, however large the model. Blocks a CAR left out are then asked for one by one as raw blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit, urlunsplit

import httpx

from aiprov.adapters.car_file import MAX_BLOCK
from aiprov.core import car
from aiprov.core.unixfs import Cid
from aiprov.errors import BackendError, IntegrityError, InvalidInput

CAR_TYPE = "application/vnd.ipld.car"
RAW_TYPE = "application/vnd.ipld.raw"
DEFAULT_TIMEOUT_S = 30.0
READ_PIECE = 1 << 20


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
        out = bytes(self._buffer[self._pos : self._pos + n])
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


@dataclass
class GatewayBlocks:
    """The checked blocks of one DAG fetched from `gateways` (tried in order), spooled in `spool` (a CARv1 file).

    Use as a context manager: the spool is removed on exit. `block(cid)` (a `car_file.BlockSource`) answers from
    the spool, asking the gateways for a raw block it lacks. `on_skip` hears of each gateway given up on.
    """

    root: Cid
    gateways: list[str]
    spool: Path
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_bytes: int | None = None
    """Refuse to spool more than this many block bytes (a gateway padding a CAR with unrelated blocks)."""
    on_skip: Callable[[Skipped], None] | None = None
    skipped: list[Skipped] = field(default_factory=list)
    index: dict[Cid, tuple[int, int]] = field(default_factory=dict)
    spooled: int = 0
    _file: BinaryIO | None = None
    _client: httpx.Client | None = None
    _bad: set[str] = field(default_factory=set)

    def __enter__(self) -> GatewayBlocks:
        self.gateways = [gateway_base(g) for g in self.gateways]
        if not self.gateways:
            raise InvalidInput("no gateway to fetch from", hint="give --gateway URL (repeatable)")
        try:
            self._file = open(self.spool, "xb+")
        except OSError as e:
            raise InvalidInput(f"cannot write {self.spool}: {e.strerror}") from e
        self._file.write(car.header([self.root]))
        timeout = httpx.Timeout(self.timeout_s)
        self._client = httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": "aiprov"})
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._file is not None:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.spool.unlink()

    # what the unpacker asks for ---------------------------------------------------------------------------

    def block(self, cid: Cid) -> bytes:
        """The block `cid` names, checked. Raises BackendError when no gateway left has it."""
        where = self.index.get(cid)
        if where is None:
            self._fetch_raw(cid)
            where = self.index[cid]
        assert self._file is not None
        self._file.seek(where[0])
        data = self._file.read(where[1])
        self._file.seek(0, os.SEEK_END)
        return data

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
            reader = _Reader(response.iter_bytes(READ_PIECE), self.timeout_s)
            length = reader.varint()
            if length is None or length > 1 << 20:
                raise GatewaySkipped("sent something that is not a CARv1")
            try:
                car.parse_header(bytes(reader.exactly(length)))
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
                self._keep(cid, memoryview(section)[offset:], gateway)
                reader.progressed()

    def _fetch_raw(self, cid: Cid) -> None:
        for gateway in self._usable():
            try:
                with self._get(gateway, cid, RAW_TYPE, "raw") as response:
                    reader = _Reader(response.iter_bytes(READ_PIECE), self.timeout_s)
                    data = reader.rest(MAX_BLOCK)
                self._keep(cid, memoryview(data), gateway)
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

    def _keep(self, cid: Cid, block: memoryview, gateway: str) -> None:
        """Check `block` against `cid` and append it to the spool (once). A mismatch skips the gateway."""
        if len(block) > MAX_BLOCK:
            raise GatewaySkipped(f"sent a {len(block)}-byte block {cid}, more than any IPFS node sends")
        if hashlib.sha256(block).digest() != cid.digest:
            raise GatewaySkipped(f"sent block {cid} with bytes that do not hash to its CID (altered)", altered=True)
        if cid in self.index:
            return
        if self.max_bytes is not None and self.spooled + len(block) > self.max_bytes:
            raise GatewaySkipped(f"sent more than the {self.max_bytes} bytes this DAG can hold")
        assert self._file is not None
        try:
            self._file.write(car.section_head(cid, len(block)))
            start = self._file.tell()
            self._file.write(block)
        except OSError as e:
            raise BackendError(f"cannot write {self.spool}: {e.strerror}") from e
        self.index[cid] = (start, len(block))
        self.spooled += len(block)


def spool_path(near: Path) -> Path:
    """A fresh hidden spool file name in `near` (a directory on the destination's file system)."""
    return near / f".aiprov-ipfs-{secrets.token_hex(6)}.car"
