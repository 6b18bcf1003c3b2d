"""End to end: a pickle that would open a network connection through a scikit-learn re-export never runs."""

from __future__ import annotations

import pickle
import socket
import struct
from collections.abc import Iterator
from multiprocessing.connection import Client
from pathlib import Path

import pytest
from scan_corpus import Call, malicious
from sklearn.preprocessing import FunctionTransformer
from tests.support.cli import cli


def _s(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def _client_call(module: str, port: int) -> bytes:
    """Protocol 4: `module.Client(("127.0.0.1", port))`, the bytes pickle writes (or their crafted spelling)."""
    address = _s("127.0.0.1") + b"J" + struct.pack("<i", port) + b"\x86"
    return b"\x80\x04" + _s(module) + _s("Client") + b"\x93" + address + b"\x85R."


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.settimeout(0.5)
        yield sock


def test_client_pickles_are_refused_by_push_and_eval_and_never_connect(tmp_path: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    marker = tmp_path / "pwned"
    payloads = {
        "pickled": pickle.dumps(Call(Client, ("127.0.0.1", port)), protocol=4),
        "crafted": _client_call("sklearn.callback._transport", port),
        "function_transformer": pickle.dumps(FunctionTransformer(func=Client, kw_args={}), protocol=4),
        "os_system": malicious(str(marker), str(tmp_path))["os_system_protocol_4"],
    }
    assert b"multiprocessing.connection" in payloads["pickled"]
    home = tmp_path / "home"
    assert cli(home, "init")[0] == 0
    for name, data in payloads.items():
        model = tmp_path / name / "model.pkl"
        model.parent.mkdir()
        model.write_bytes(data)
        code, _, err = cli(home, "push", str(model), "-n", f"mallory/{name}")
        assert code == 7 and "refused" in err, (name, err)
        code, _, err = cli(home, "eval", f"mallory/{name}", "--benchmark", "iris")
        assert code != 0, (name, err)
    with pytest.raises(TimeoutError):
        listener.accept()
    assert not marker.exists()
