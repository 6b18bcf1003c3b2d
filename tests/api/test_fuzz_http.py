"""Property-based fuzz of the HTTP API against a real `aiprov serve`, over one keep-alive connection.

Hypothesis draws the inputs issue #14 found breaking the hub (huge and Unicode digits in every version or
reference, lone surrogates, NaN, Infinity, 1e400, deep nesting, control characters and over-long names and paths
in every name or path field, huge `Range` and `Content-Range` values, malformed headers) and sends them to every
route that takes them. Every answer must be below 500; every error an RFC 9457 problem body naming no server
path; and every answer must come over the same TCP connection (the client's port never changes), so no input
resets a keep-alive connection. Examples are derandomized, so CI runs the same cases every time.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from apitools import Server, init_home, push, start_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WEIGHTS = b"weights"
SHA = hashlib.sha256(WEIGHTS).hexdigest()
FILES = [{"path": "w.bin", "size": len(WEIGHTS), "sha256": SHA}]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Fuzz:
    """The served hub, alice's keep-alive client on it, and the strings no answer may contain."""

    server: Server
    client: httpx.Client
    port: int
    forbidden: tuple[str, ...]


def _local_port(response: httpx.Response) -> int:
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    home = tmp_path_factory.mktemp("fuzz") / "home"
    container, admin = init_home(home)
    alice = container.accounts.add_user("alice").token
    model = home.parent / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(WEIGHTS)
    push(container, model, "alice/m")
    container.close()
    server = start_server(home, admin)
    client = server.client(alice, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
    first = client.get("/api/v1/models")
    assert first.status_code == 200
    forbidden = (
        str(home),
        str(tmp_path_factory.getbasetemp()),
        tempfile.gettempdir() + "/",
        sys.prefix,
        str(Path.home()) + "/",
        str(Path(__file__).parents[2]),
    )
    state = Fuzz(server, client, _local_port(first), forbidden)
    yield state
    last = client.get("/api/v1/models/alice/m")
    assert last.status_code == 200 and _local_port(last) == state.port
    server.stop()
    log = server.log_text()
    assert "Traceback" not in log, log[-4000:]


def check(fuzz: Fuzz, response: httpx.Response) -> None:
    """Below 500, a problem body for every error, no server path, and the same connection as ever."""
    where = f"{response.request.method} {str(response.request.url)[:200]}"
    assert response.status_code < 500, (where, response.text[:2000])
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert response.headers["content-type"].startswith("application/problem+json"), (where, response.headers)
        body = response.json()
        assert body["status"] == response.status_code and body["title"] and body["detail"], (where, body)
    text = response.text
    assert "Traceback" not in text, where
    for path in fuzz.forbidden:
        assert path not in text, (where, path, text[:2000])
    assert _local_port(response) == fuzz.port, f"{where}: the keep-alive connection was closed"


def send(fuzz: Fuzz, method: str, url: str, **kw: Any) -> httpx.Response:
    response = fuzz.client.request(method, url, **kw)
    check(fuzz, response)
    return response


def seg(text: str, safe: str = "") -> str:
    """`text` as a URL path segment; a lone surrogate becomes the bytes a broken client would send."""
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe)


# strategies -------------------------------------------------------------------------------------------------------

NON_ASCII_DIGITS = st.characters(categories=["Nd", "No", "Nl"], exclude_characters="0123456789")
"""Digits of other scripts (U+0661), fullwidth digits, superscripts, fractions, Roman numerals."""

HUGE_NUMBERS = (
    st.integers(min_value=2**31, max_value=10**30).map(str)
    | st.integers(min_value=4290, max_value=5000).map(lambda n: "9" * n)
    | st.sampled_from(["0", "00", "-1", "2147483648", "99999999999999999999999", "9" * 25, "1" * 5000])
)
UNICODE_NUMBERS = (
    st.text(NON_ASCII_DIGITS, min_size=1, max_size=6)
    | st.sampled_from(["²", "\u0661", "\uff11", "\u07c1", "1\u0661", "\uff11\uff12", "1²", "Ⅻ"])
    | st.builds(
        lambda a, b: a + b, st.text("0123456789", min_size=1, max_size=3), st.text(NON_ASCII_DIGITS, min_size=1)
    )
)
BAD_VERSIONS = HUGE_NUMBERS | UNICODE_NUMBERS

CONTROLS = st.characters(categories=["Cc"]) | st.sampled_from(["\n", "\x1b", "\x00", "\r", "\x9b"])
"""Newline, ESC, NUL, DEL and the C1 controls: what a terminal acts on (bidi controls: `BAD_PATHS`)."""


def _spliced(base: str) -> st.SearchStrategy[str]:
    return st.builds(
        lambda at, bad: base[:at] + bad + base[at:],
        st.integers(min_value=0, max_value=len(base)),
        st.text(CONTROLS, min_size=1, max_size=3),
    )


BAD_TEXT = (
    _spliced("alice")
    | _spliced("w.bin")
    | st.integers(min_value=10_001, max_value=12_000).map(lambda n: "a" * n)
    | st.sampled_from(["\ud800", "a\udfffb", "a\nb.json", "esc\x1b[31m.bin", "\x00"])
)
"""Names, paths and text a terminal, a file system or a database would mangle, or over every length limit."""

BAD_PATHS = st.sampled_from(
    [
        "bidi\u202etxt.exe",
        "\u2066a",
        "../up",
        "/abs",
        "a//b",
        "./a",
        "a/",
        "/".join(["d" * 255] * 17),
        "d" * 256,
        "é" * 128,
    ]
)
"""File paths that are fine as other text but not as a path in a manifest: bidi controls (a name would display
as another), not relative or not clean, over 4,096 bytes or 255 bytes a segment."""


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


POISON = st.sampled_from(
    [
        '"\\ud800"',
        '"\\udfff"',
        '"a\\ud800b"',
        '"\\udc00\\ud800"',
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "9007199254740993",
        "1" * 30,
        "1" * 5000,
        '{"a": ' * 65 + "1" + "}" * 65,
        _deep(65),
        _deep(900),
    ]
) | st.integers(min_value=65, max_value=3000).map(_deep)
"""JSON fragments no document the hub accepts may hold: lone surrogates, non-finite or inexact numbers, depth.
(Control characters are valid JSON and refused only where text is shown: see the names and paths below.)"""


# versions and references -----------------------------------------------------------------------------------------


def _version_requests(v: str) -> list[tuple[str, str, dict[str, Any]]]:
    m = "/api/v1/models/alice/m"
    q = {"version": v}
    return [
        ("GET", f"/api/v1/versions/{seg('alice/m@' + v, safe='/@')}", {}),
        ("GET", f"/api/v1/versions/{seg(v)}", {}),
        ("GET", f"{m}/versions/{seg(v)}", {}),
        ("GET", f"{m}/versions/{seg(v)}/verify", {}),
        ("GET", f"{m}/versions/{seg(v)}/evidence", {}),
        ("GET", f"{m}/versions/{seg(v)}/files/w.bin", {}),
        ("POST", f"{m}/versions/{seg(v)}/signatures", {"json": {"bundle": "{}", "public_key": "x" * 20}}),
        ("POST", f"{m}/versions/{seg(v)}/pin", {}),
        ("GET", f"{m}/evaluations", {"params": q}),
        ("POST", f"{m}/evaluations", {"params": q, "json": {"benchmark": "iris"}}),
        ("PUT", f"{m}/aliases/prod", {"json": {"version": v}}),
        ("PUT", f"{m}/aliases/prod", {"content": f'{{"version": {v}}}'.encode("utf-8", "surrogatepass")}),
        ("POST", f"{m}/predict", {"params": q, "json": {"inputs": [[1]]}}),
        ("POST", f"/api/v1/models/alice/{seg('m@' + v, safe='@')}/predict", {"json": {"inputs": [[1]]}}),
        ("POST", f"/infer/{seg(v)}", {"json": {"inputs": [[1]]}}),
        ("GET", f"{m}/usage", {"params": q}),
        ("GET", f"{m}/events", {"params": {"limit": v}}),
        ("GET", f"/api/v1/log/entries/{seg(v)}", {}),
        ("GET", "/api/v1/log/proof/inclusion", {"params": {"index": v, "size": v}}),
        ("GET", "/api/v1/log/proof/consistency", {"params": {"from": v, "to": v}}),
        ("GET", f"/api/v1/evaluations/{seg(v)}", {}),
        ("POST", f"/api/v1/evaluations/{seg(v)}/reproduce", {}),
        ("DELETE", f"/api/v1/tokens/{seg(v)}", {}),
        ("GET", f"/tile/{seg(v)}", {}),
        ("GET", f"/tile/0/{seg(v)}", {}),
        ("GET", f"/ipfs/{seg(v)}", {}),
        ("PUT", f"/api/v1/blobs/sha256:{SHA}", {"params": {"offset": v}, "content": b"x"}),
        ("GET", "/api/v1/models", {"params": {"min": v}}),
    ]


@FUZZ
@given(version=BAD_VERSIONS)
def test_bad_versions_are_4xx_problems_on_every_route(fuzz: Fuzz, version: str) -> None:
    answers = [send(fuzz, method, url, **kw) for method, url, kw in _version_requests(version)]
    # `alice/m@V` names no version (the Arabic-Indic one, the fullwidth one, the superscript are not version 1)
    assert answers[0].status_code == 422, answers[0].text
    assert all(r.status_code >= 400 for r in answers[2:16]), [(str(r.url)[:80], r.status_code) for r in answers]


# JSON bodies ------------------------------------------------------------------------------------------------------

_BODIES = [
    ("POST", "/api/v1/models/alice/x/versions", '{"files": FILES, "description": P}'),
    ("POST", "/api/v1/models/alice/x/versions", '{"files": FILES, "license": P}'),
    ("POST", "/api/v1/models/alice/x/versions", '{"files": FILES, "metadata": {"k": P}}'),
    ("POST", "/api/v1/models/alice/x/versions", '{"files": FILES, "metadata": {"k": [1, {"j": P}]}}'),
    ("POST", "/api/v1/models/alice/x/versions", '{"files": FILES, "params": {"lr": P}}'),
    ("POST", "/api/v1/models/alice/x/versions", '{"files": FILES, "tags": [P]}'),
    ("POST", "/api/v1/models/alice/x/versions", '{"files": FILES, "parents": [P]}'),
    ("POST", "/api/v1/models/alice/x/versions", '{"files": [{"path": P, "size": 7, "sha256": "SHA"}]}'),
    ("POST", "/api/v1/models/alice/x/versions", '{"files": [{"path": "w.bin", "size": P, "sha256": "SHA"}]}'),
    ("POST", "/api/v1/models/alice/x/versions", "P"),
    ("PUT", "/api/v1/models/alice/m/aliases/prod", '{"version": P}'),
    ("POST", "/api/v1/models/alice/m/evaluations", '{"benchmark": P}'),
    ("POST", "/api/v1/models/alice/m/evaluations", '{"dataset": P}'),
    ("POST", "/api/v1/users", '{"name": P}'),
    ("POST", "/api/v1/users/alice/tokens", '{"scopes": [P]}'),
    ("POST", "/api/v1/datasets", '{"name": P, "digest": "sha256:SHA", "target": "a"}'),
    ("POST", "/api/v1/datasets", '{"name": "alice/d", "digest": "sha256:SHA", "target": P}'),
    ("POST", "/api/v1/models/alice/m/versions/1/signatures", '{"bundle": P, "public_key": P}'),
    ("POST", "/api/v1/models/alice/m/predict", '{"inputs": [[P]]}'),
    ("POST", "/api/v1/models/alice/m/predict", '{"inputs": [[1, P]]}'),
    ("POST", "/api/v1/models/alice/m/predict", '{"inputs": P}'),
    ("POST", "/api/v1/models/alice/m/predict", '{"records": [{"a": P}]}'),
    ("POST", "/api/v1/models/alice/m/predict", '{"inputs": [[1]], "proba": P}'),
    ("POST", "/api/v1/models/alice/m/predict", "P"),
    ("POST", f"/infer/sha256:{SHA[:8]}", '{"inputs": [[P]]}'),
]


def _body(template: str, fragment: str) -> bytes:
    text = template.replace("FILES", json.dumps(FILES)).replace("SHA", SHA).replace("P", fragment)
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(fragment=POISON)
def test_json_no_implementation_reads_alike_is_a_4xx_problem_in_every_body(fuzz: Fuzz, fragment: str) -> None:
    for method, url, template in _BODIES:
        body = _body(template, fragment)
        r = send(fuzz, method, url, content=body, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (url, fragment[:40], r.status_code, r.text[:300])
    assert send(fuzz, "GET", "/api/v1/models/alice/x").status_code == 404  # nothing was committed


@FUZZ
@given(data=st.binary(max_size=64) | st.text(max_size=64).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_bodies_that_are_not_json_or_not_utf8_are_4xx_problems(fuzz: Fuzz, data: bytes) -> None:
    for method, url, _ in _BODIES[::3]:
        r = send(fuzz, method, url, content=data, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (url, data, r.status_code, r.text[:300])


# names and paths --------------------------------------------------------------------------------------------------


def _name_requests(s: str) -> list[tuple[str, str, dict[str, Any]]]:
    text = json.dumps(s)  # ensure_ascii: a lone surrogate is sent as its \\u escape
    return [
        ("GET", f"/api/v1/models/{seg(s)}/m", {}),
        ("GET", f"/api/v1/models/alice/{seg(s)}", {}),
        ("GET", f"/api/v1/models/alice/{seg(s)}/versions", {}),
        ("POST", f"/api/v1/models/alice/{seg(s)}/versions", {"json": {"files": FILES}}),
        ("GET", f"/api/v1/versions/alice/{seg(s)}", {}),
        ("GET", f"/api/v1/versions/{seg(s, safe='/')}", {}),
        ("PUT", f"/api/v1/models/alice/m/aliases/{seg(s)}", {"json": {"version": "1"}}),
        ("PUT", "/api/v1/models/alice/m/aliases/prod", {"content": f'{{"version": {text}}}'.encode()}),
        ("GET", f"/api/v1/models/alice/m/versions/1/files/{seg(s, safe='/')}", {}),
        ("GET", f"/api/v1/models/alice/m/versions/{seg(s)}/files/w.bin", {}),
        ("POST", f"/api/v1/models/alice/{seg(s)}/predict", {"json": {"inputs": [[1]]}}),
        ("GET", f"/api/v1/models/alice/{seg(s)}/usage", {}),
        ("GET", f"/api/v1/users/{seg(s)}/usage", {}),
        ("POST", f"/api/v1/users/{seg(s)}/tokens", {"json": {}}),
        ("GET", f"/api/v1/datasets/alice/{seg(s)}", {}),
        ("GET", f"/tile/{seg(s, safe='/')}", {}),
        ("GET", f"/ipfs/{seg(s)}", {}),
        ("GET", f"/api/v1/blobs/{seg(s)}", {}),
        ("GET", "/api/v1/models?" + "&".join(f"{k}={seg(s)}" for k in ("author", "name", "tag", "search")), {}),
        ("GET", f"/api/v1/models/alice/m/events?limit={seg(s)}", {}),
    ] + [
        (method, url, {"content": _body(template, text), "headers": {"content-type": "application/json"}})
        for method, url, template in _BODIES
        # metadata is free JSON (any string), a description may hold line breaks: they have tests of their own
        if not url.endswith("predict") and "metadata" not in template and "description" not in template
    ]


@FUZZ
@given(text=BAD_TEXT)
def test_control_characters_and_long_names_are_4xx_problems_in_every_name_and_path(fuzz: Fuzz, text: str) -> None:
    for method, url, kw in _name_requests(text):
        r = send(fuzz, method, url, **kw)
        if r.status_code < 400:
            assert method == "GET", (url, ascii(text)[:80], r.status_code, r.text[:300])
        else:
            detail = r.json()["detail"]
            assert not any(c in detail for c in "\n\r\x1b\x00\u202e"), (url, ascii(detail))
    assert send(fuzz, "GET", "/api/v1/models/alice/x").status_code == 404


@FUZZ
@given(path=BAD_PATHS)
def test_paths_no_file_system_could_hold_are_4xx_problems(fuzz: Fuzz, path: str) -> None:
    r = send(fuzz, "POST", "/api/v1/models/alice/x/versions", json={"files": [{**FILES[0], "path": path}]})
    assert r.status_code == 422, r.text
    send(fuzz, "GET", f"/api/v1/models/alice/m/versions/1/files/{seg(path, safe='/')}")


# headers ----------------------------------------------------------------------------------------------------------

HUGE_DIGITS = st.integers(min_value=19, max_value=6000).map(lambda n: "9" * n) | st.integers(
    min_value=2**63 - 2, max_value=2**70
).map(str)
RANGE_NUMBER = HUGE_DIGITS | st.integers(min_value=0, max_value=20).map(str) | st.text(NON_ASCII_DIGITS, max_size=3)
RANGES = st.builds(
    lambda a, b, form: form.format(a=a, b=b),
    RANGE_NUMBER,
    RANGE_NUMBER,
    st.sampled_from(["bytes={a}-", "bytes=-{a}", "bytes={a}-{b}", "bytes={a}-{b},{b}-", "bytes=-", "items={a}-{b}"]),
)
CONTENT_RANGES = st.builds(
    lambda a, b, c, form: form.format(a=a, b=b, c=c),
    RANGE_NUMBER,
    RANGE_NUMBER,
    RANGE_NUMBER,
    st.sampled_from(["bytes {a}-{b}/{c}", "bytes {a}-{b}/*", "bytes */{c}", "bytes {a}-{b}", "{a}-{b}/{c}"]),
)


@FUZZ
@given(value=RANGES)
def test_huge_range_values_are_answered_or_4xx_problems(fuzz: Fuzz, value: str) -> None:
    header = {"Range": value.encode("utf-8")}
    for url in (f"/api/v1/blobs/sha256:{SHA}", "/api/v1/models/alice/m/versions/1/files/w.bin"):
        r = send(fuzz, "GET", url, headers=header)
        assert r.status_code in (200, 206, 416), (value[:60], r.status_code)
        if r.status_code in (200, 206):
            assert r.content in (WEIGHTS, *(WEIGHTS[i:j] for i in range(7) for j in range(i + 1, 8))), r.content


@FUZZ
@given(value=CONTENT_RANGES)
def test_huge_content_range_values_are_4xx_problems_and_keep_nothing(fuzz: Fuzz, value: str) -> None:
    digest = f"sha256:{hashlib.sha256(b'never stored').hexdigest()}"
    r = send(fuzz, "PUT", f"/api/v1/blobs/{digest}", content=b"x", headers={"Content-Range": value.encode("utf-8")})
    assert 400 <= r.status_code < 500 or r.status_code == 202, (value[:60], r.status_code, r.text[:300])
    assert send(fuzz, "HEAD", f"/api/v1/blobs/{digest}").status_code == 404


def _sendable(value: bytes) -> bool:
    """A header value HTTP can frame: no control character but tab (those are the tests below), not blank."""
    return (
        bool(value.strip()) and value == value.strip() and not any((c < 0x20 and c != 0x09) or c == 0x7F for c in value)
    )


HEADER_JUNK = (
    st.binary(min_size=1, max_size=40)
    | st.integers(min_value=100, max_value=6000).map(lambda n: b"9" * n)
    | st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass"))
).filter(_sendable)
MALFORMED_HEADERS = st.builds(
    lambda name, value: {name: value},
    st.sampled_from(
        ["Authorization", "Content-Type", "Accept", "If-None-Match", "If-Range", "Range", "X-Forwarded-For", "Cookie"]
    ),
    HEADER_JUNK
    | HEADER_JUNK.map(lambda b: b"Bearer " + b)
    | st.sampled_from([b"Bearer", b"Bearer ", b"Basic Zm9vOmJhcg==", b"Bearer aiprov_1_2", b"Bearer aiprov_\xff_\xfe"])
    | HUGE_DIGITS.map(lambda d: b"Bearer aiprov_" + d.encode() + b"_x"),
)


@FUZZ
@given(headers=MALFORMED_HEADERS)
def test_malformed_headers_are_answered_or_4xx_problems(fuzz: Fuzz, headers: dict[str, bytes]) -> None:
    for method, url, kw in [
        ("GET", "/api/v1/models/alice/m", {}),
        ("GET", f"/api/v1/blobs/sha256:{SHA}", {}),
        ("PUT", "/api/v1/models/alice/m/aliases/prod", {"content": b'{"version": "1"}'}),
        ("POST", "/api/v1/models/alice/m/predict", {"content": b'{"inputs": [[1]]}'}),
        ("POST", "/api/v1/users/alice/tokens", {"content": b"{}"}),
    ]:
        send(fuzz, method, url, headers=headers, **kw)


# what HTTP cannot frame (RFC 9112: a 400, then close) costs that connection, and only that one ----------------------


def _raw(fuzz: Fuzz, request: bytes) -> bytes:
    host, port = fuzz.server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
        b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        b"GET /api/v1/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/models HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x1b[2J\r\n\r\n",
        b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\x7f\r\n\r\n",
        b"PUT /api/v1/blobs/sha256:" + SHA.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Range: \x01\r\n\r\n",
    ],
    ids=[
        "huge-content-length",
        "negative-content-length",
        "space-in-name",
        "200k-header",
        "nul-in-target",
        "http-9",
        "esc-in-authorization",
        "del-in-range",
        "ctl-in-content-range",
    ],
)
def test_requests_http_cannot_frame_are_4xx_and_the_server_serves_on(fuzz: Fuzz, request_bytes: bytes) -> None:
    answer = _raw(fuzz, request_bytes)
    if answer:  # the HTTP parser answers 400 and closes, or tolerates what it can read: never a 5xx
        status = int(answer.split(b" ", 2)[1])
        assert status < 500, answer[:300]
    check(fuzz, fuzz.client.get("/api/v1/models/alice/m"))
