"""Connection timeouts of `aiprov serve` (docs/api.md, "Timeouts"), against a real server process: a request head
sent slowly (slowloris), or never, is cut at AIPROV_HEADER_TIMEOUT_S while other clients are served; an idle
kept-alive connection is closed after the keep-alive timeout; an oversized head is a 431."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from apitools import Server

BOUND_S = 1.0
SLACK_S = 1.5
"""How much later than the bound a cut may be seen here (timer granularity, a loaded test machine)."""


def connect(server: Server) -> socket.socket:
    url = urlsplit(server.base_url)
    return socket.create_connection((url.hostname, url.port), timeout=10)


def closed_after(s: socket.socket, trickle: bytes = b"", every_s: float = 0.1) -> float:
    """Send `trickle` a byte at a time every `every_s` (then nothing) until the server closes; the seconds taken."""
    started = time.monotonic()
    s.setblocking(False)
    sent = 0
    while time.monotonic() - started < 30:
        try:
            if s.recv(65536) == b"":
                return time.monotonic() - started
        except BlockingIOError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        if sent < len(trickle):
            try:
                s.send(trickle[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            sent += 1
        time.sleep(every_s)
    raise AssertionError("the server never closed the connection")


def served_meanwhile(server: Server, stop: threading.Event) -> Callable[[], list[float]]:
    """Make requests on fresh connections until `stop`; return a function giving their latencies."""
    latencies: list[float] = []

    def run() -> None:
        while not stop.is_set():
            started = time.monotonic()
            assert httpx.get(f"{server.base_url}/api/v1/user", timeout=5).status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)

    thread = threading.Thread(target=run)
    thread.start()

    def result() -> list[float]:
        stop.set()
        thread.join()
        return latencies

    return result


@pytest.mark.parametrize("workers", [1, 2])
def test_a_request_head_sent_byte_by_byte_is_cut_at_the_bound_while_others_are_served(
    make_server: Callable[..., Server], workers: int
) -> None:
    server = make_server(env={"AIPROV_HEADER_TIMEOUT_S": str(BOUND_S)}, workers=workers)
    head = b"GET /api/v1/user HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
    slow = [connect(server) for _ in range(3)]
    stop = threading.Event()
    latencies = served_meanwhile(server, stop)
    results: list[float] = []
    threads = [threading.Thread(target=lambda s=s: results.append(closed_after(s, head))) for s in slow]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served = latencies()
    assert len(results) == 3 and all(BOUND_S - 0.1 <= r <= BOUND_S + SLACK_S for r in results), results
    assert served and max(served) < 1.0, served  # a normal client is served at once meanwhile


def test_a_connection_that_sends_nothing_and_a_slow_second_head_are_cut_too(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(env={"AIPROV_HEADER_TIMEOUT_S": str(BOUND_S)})
    assert BOUND_S - 0.1 <= closed_after(connect(server)) <= BOUND_S + SLACK_S
    kept = connect(server)
    kept.sendall(b"GET /api/v1/user HTTP/1.1\r\nHost: x\r\n\r\n")
    assert kept.recv(65536).startswith(b"HTTP/1.1 200")
    # the keep-alive pause, then a head that never completes: cut at the bound from its first byte
    time.sleep(0.5)
    took = closed_after(kept, b"GET /api/v1/user HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 100)
    assert BOUND_S - 0.1 <= took <= BOUND_S + SLACK_S


def test_a_normal_slowish_request_within_the_bound_is_served(make_server: Callable[..., Server]) -> None:
    server = make_server(env={"AIPROV_HEADER_TIMEOUT_S": "3"})
    s = connect(server)
    for part in (b"GET /api/v1/user HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
        s.sendall(part)
        time.sleep(0.4)
    assert s.recv(65536).startswith(b"HTTP/1.1 200")


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(server: Server) -> None:
    s = connect(server)
    s.sendall(b"GET /api/v1/user HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    assert 4.5 <= closed_after(s) <= 5 + SLACK_S  # KEEP_ALIVE_S; the head deadline (10 s) is not running


def answer_to(server: Server, data: bytes) -> bytes:
    """What the server sends back to `data` before it closes the connection."""
    s = connect(server)
    s.sendall(data)
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
    return answer


def test_a_request_head_over_64_kib_is_a_431(server: Server) -> None:
    head = b"GET /api/v1/user HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000
    assert answer_to(server, head + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    assert answer_to(server, head).startswith(b"HTTP/1.1 431")  # not even complete: not held until the deadline
    assert httpx.get(f"{server.base_url}/api/v1/user", headers={"X-Fine": "f" * 8000}).status_code == 200
