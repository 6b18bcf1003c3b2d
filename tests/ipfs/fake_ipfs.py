"""A small local HTTP server speaking the two pinning APIs' documented requests and responses.

- Kubo RPC `POST /api/v0/dag/import?pin-roots=true`: a multipart body whose `file` part is a CAR; answers one
  ndjson line per root, `{"Root": {"Cid": {"/": CID}, "PinErrorMsg": ""}}`. The CAR is checked with npm
  `ipfs-car roots` (an independent parser) and kept for the test to unpack.
- IPFS Pinning Service API `POST /pins` (`{"cid", "name"}`, bearer token) -> 202 PinStatus, and
  `GET /pins/{requestid}` -> PinStatus (`queued`, then `pinning`, then `pinned`); 401 with the spec's error body
  for a wrong token.

`fail_first` makes the first N requests answer 500 (the retry path).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.ipfs.jstools import ipfs_car

TOKEN = "secret-token"


@dataclass
class FakeIpfs:
    workdir: Path
    fail_first: int = 0
    final_status: str = "pinned"
    requests: list[tuple[str, str]] = field(default_factory=list)
    cars: list[Path] = field(default_factory=list)
    pins: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    url: str = ""


def _handler(state: FakeIpfs) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _failing(self) -> bool:
            state.requests.append((self.command, self.path))
            if state.fail_first > 0:
                state.fail_first -= 1
                self._body()
                self._send(500, {"Message": "temporarily broken", "Code": 0, "Type": "error"})
                return True
            return False

        def do_POST(self) -> None:
            if self._failing():
                return
            url = urlsplit(self.path)
            if url.path == "/api/v0/dag/import":
                self._dag_import(parse_qs(url.query))
            elif url.path == "/pins":
                self._pin()
            else:
                self._send(404, {"Message": "no such endpoint"})

        def do_GET(self) -> None:
            if self._failing():
                return
            if not self._authorized():
                return
            request_id = self.path.removeprefix("/pins/")
            pin = state.pins.get(request_id)
            if pin is None:
                self._send(404, {"error": {"reason": "NOT_FOUND", "details": request_id}})
                return
            state.polls[request_id] = state.polls.get(request_id, 0) + 1
            pin["status"] = "pinning" if state.polls[request_id] < 2 else state.final_status
            self._send(200, pin)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._send(401, {"error": {"reason": "UNAUTHORIZED", "details": "the access token is not valid"}})
                return False
            return True

        def _dag_import(self, query: dict[str, list[str]]) -> None:
            raw = self._body()
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw
            )
            parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
            if len(parts) != 1 or query.get("pin-roots") != ["true"]:
                self._send(400, {"Message": "expected one file part and pin-roots=true", "Code": 1, "Type": "error"})
                return
            car = state.workdir / f"received-{len(state.cars)}.car"
            car.write_bytes(parts[0].get_payload(decode=True))
            state.cars.append(car)
            roots = ipfs_car("roots", str(car))
            if roots.returncode != 0:
                self._send(500, {"Message": f"bad CAR: {roots.stderr[:200]}", "Code": 0, "Type": "error"})
                return
            lines = [{"Root": {"Cid": {"/": r}, "PinErrorMsg": ""}} for r in roots.stdout.split()]
            self._send(200, b"".join(json.dumps(line).encode() + b"\n" for line in lines), "application/json")

        def _pin(self) -> None:
            body = json.loads(self._body() or b"{}")
            if not self._authorized():
                return
            if not isinstance(body.get("cid"), str):
                self._send(400, {"error": {"reason": "BAD_REQUEST", "details": "cid is required"}})
                return
            request_id = uuid.uuid4().hex
            pin = {
                "requestid": request_id,
                "status": "queued",
                "created": "2026-01-01T00:00:00Z",
                "pin": {"cid": body["cid"], "name": body.get("name")},
                "delegates": ["/dns4/pinner.example/tcp/4001/p2p/12D3KooWExample"],
            }
            state.pins[request_id] = pin
            self._send(202, pin)

    return Handler


@contextmanager
def fake_ipfs(workdir: Path, **options: Any) -> Iterator[FakeIpfs]:
    state = FakeIpfs(workdir, **options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
