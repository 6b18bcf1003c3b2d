"""The HTTP protocol `aiprov serve` runs: uvicorn's httptools one, with a deadline and a bound on request heads.

uvicorn times out an idle keep-alive connection (`timeout_keep_alive`) but not one that is sending a request
head: the keep-alive timer is cancelled by the first byte received, and a new connection has no timer at all. A
client that sends a request line and headers a byte at a time (slowloris), or opens connections and sends
nothing, holds them open for ever. This protocol starts a deadline when a connection opens, and when the first
byte of a further request on a kept-alive connection arrives; if the request head (request line and headers) is
not complete by then, the connection is closed. Once the head is complete the application has the request, and
the deadline is cleared: reading the body is bounded by the routes' limits, not by this.

A head over MAX_HEAD_BYTES is answered 431 and the connection closed: httptools, unlike h11
(`h11_max_incomplete_event_size`), has no bound of its own.

httptools calls `on_message_begin` at the first byte of a request and `on_headers_complete` at the end of its
head, so body bytes (even those a client keeps sending after an early answer) are never taken for a head.

The deadline costs no timer per request: a connection keeps one timer, armed when a head starts and none is
pending, and a completed head only notes that it is done. When the timer fires it closes the connection if the
head in progress started `header_timeout_s` ago or more, and otherwise re-arms itself for what is left of that
head's bound (or stops, between requests). So each head is cut exactly at its own deadline, and a busy
kept-alive connection sets one timer per `header_timeout_s` rather than two timer operations per request
(measured with `benchmarks/bench_serving.py`: about 3% of the API process's CPU per 1-row prediction).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
"""The largest request head (request line and headers) accepted: far above what any client of the API sends."""

_TOO_LARGE_BODY = f"request head over {MAX_HEAD_BYTES} bytes\n".encode()
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)


class HeadDeadlineProtocol(HttpToolsProtocol):
    """See the module's docstring; `header_timeout_s` is set by `with_header_timeout`."""

    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = 0.0  # loop time at which the head in progress began
        self._in_head = False
        self._head_size = 0  # of the request line's URL and the headers parsed so far
        self._received_in_head = 0  # bytes read while a head was incomplete (counted per read: an upper bound)
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head = True  # waiting for the first head: a connection that sends nothing is closed too
        self._start_deadline()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._in_head:  # a head still incomplete after these bytes: httptools holds them, bound them too
            self._received_in_head += len(data)
            if self._received_in_head > MAX_HEAD_BYTES:
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # a further request: its deadline starts now (the first one's at the connection's)
            self._start_deadline()
        self._in_head = True
        self._head_size = self._received_in_head = 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False  # the timer, if it fires, finds no head in progress and stops
        if self._head_size > MAX_HEAD_BYTES:
            self._refuse()  # the application never sees this request
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:  # the rest of the read that held a refused head: no request to hand it to
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _refuse(self) -> None:
        self._refused = True
        self._stop_deadline()
        if not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        """A head starts now: its deadline is `header_timeout_s` from now (a pending timer is reused)."""
        self._head_started = self.loop.time()
        if self._head_timer is None:  # else the pending timer fires earlier and re-arms for this head's deadline
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._check_deadline)

    def _stop_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _check_deadline(self) -> None:
        self._head_timer = None
        if not self._in_head:  # between requests: the next head arms a timer again
            return
        left = self._head_started + self.header_timeout_s - self.loop.time()
        if left > 0:  # the head in progress began after the timer was set: wait for its own deadline
            self._head_timer = self.loop.call_later(left, self._check_deadline)
        elif not self.transport.is_closing():
            self.transport.close()


class EnvHeadDeadlineProtocol(HeadDeadlineProtocol):
    """The protocol of each process of `aiprov serve --workers N`, which imports it by name.

    uvicorn pickles its config for the worker processes, so a class made at run time cannot be passed; the bound
    is the `AIPROV_HEADER_TIMEOUT_S` that `aiprov serve` validated and put in their environment.
    """

    header_timeout_s = float(os.environ.get("AIPROV_HEADER_TIMEOUT_S") or HeadDeadlineProtocol.header_timeout_s)


def with_header_timeout(header_timeout_s: float) -> type[HeadDeadlineProtocol]:
    """The protocol class to pass as uvicorn's `http`, closing a connection whose head takes over the bound."""

    class Bounded(HeadDeadlineProtocol):
        pass

    Bounded.header_timeout_s = header_timeout_s
    return Bounded
