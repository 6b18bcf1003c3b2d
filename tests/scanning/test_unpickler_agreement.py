"""The scanner's "loading this runs nothing" agrees with the real unpicklers, checked against them.

A stream the walker rejects before any import is judged text, binary or a broken pickle, never unsafe: that is
only sound if `pickle.load` (the C unpickler) and `pickle._Unpickler` (which joblib uses) reject it there too.
Each stream here is a random run of import-free opcodes followed by a payload that imports `os.system`. The real
unpicklers load it with a `find_class` that records the import and stops (nothing is imported or run); whenever
either reaches the import, in the first pickle of the file or in a later one read from the same file, the
scanner must call the file unsafe. Every case this found once is pinned below it.
"""

from __future__ import annotations

import importlib.util
import io
import pickle
import random
import struct

import pytest

from aiprov.scanning import scan_stream


class _Reached(Exception):
    pass


def _recording(base: type[pickle.Unpickler]) -> type[pickle.Unpickler]:
    class Recording(base):  # type: ignore[valid-type, misc]
        def find_class(self, module: str, name: str) -> object:
            top = module.split(".")[0]
            if not top.isidentifier() or importlib.util.find_spec(top) is None:
                raise ModuleNotFoundError(module)  # what __import__ does with such a name, importing nothing
            raise _Reached(f"{module}.{name}")

    return Recording


_UNPICKLERS = (_recording(pickle.Unpickler), _recording(pickle._Unpickler))  # type: ignore[attr-defined]


def reaches_an_import(data: bytes) -> bool:
    for unpickler in _UNPICKLERS:
        f = io.BytesIO(data)
        for _ in range(3):  # a loader may read several pickles from one file
            try:
                unpickler(f).load()
            except _Reached:
                return True
            except Exception:
                break
            if f.tell() >= len(data):
                break
    return False


# fmt: off
PLAIN = [
    b"N", b"\x88", b"\x89", b"K\x05", b"J\x01\x00\x00\x00", b"M\x01\x00", b"I01\n", b"I00\n", b"I5\n", b"I 5\n",
    b"I0x10\n", b"I010\n", b"I+1\n", b"I-07\n", b"I1_0\n", b"L5L\n", b"L5\n", b"L0x10\n", b"L0o7L\n", b"F1.5\n",
    b"F1_0\n", b"Finf\n", b"G" + bytes(8), b"S'a'\n", b'S"a"\n', b"S'\xff'\n", b"Vab\n", b"U\x01a",
    b"T\x01\x00\x00\x00a", b"X\x01\x00\x00\x00a", b"\x8c\x01a", b"\x8c\x02os", b"\x8c\x03o s", b"\x8c\x04os.x",
    b"C\x01a", b"B\x01\x00\x00\x00a", b"\x8e\x01" + bytes(7) + b"a", b"\x96\x01" + bytes(7) + b"a", b"(", b")",
    b"]", b"}", b"\x8f", b"\x90", b"\x91", b"a", b"e", b"s", b"u", b"d", b"l", b"t", b"0", b"1", b"2", b"b",
    b"(N}\x86b", b"(}N\x86b", b"NN\x86", b"}N\x86", b"p0\n", b"g0\n", b"q\x00", b"h\x00", b"r\x00\x00\x00\x00",
    b"j\x00\x00\x00\x00", b"\x94", b"\x85", b"\x86", b"\x87", b"\x8a\x01\x05", b"\x8b\x01\x00\x00\x00\x05",
    b"\x80\x04", b"\x80\x02", b"R", b".", b"P0\n", b"Q", b"\x82\x01", b"\x93", b"o", b"\x81", b"\x92", b"\x97",
    b"\x98", b"FRAME", b"FRAME", b"\x95" + struct.pack("<Q", 1 << 40),
]
# fmt: on
PAYLOADS = [
    b"cos\nsystem\n(S'echo hi'\ntR.",
    b"\x8c\x02os\x8c\x06system\x93)R.",
    b"(cos\nsystem\nS'x'\no.",
    b"(S'x'\nios\nsystem\n.",
    b"cos\nimport sys\n.",
    b"cos.x y\nsystem\n.",
    b"\x8c\x02os\x8c\x03a b\x93.",
]


def _stream(rng: random.Random) -> bytes:
    parts = [rng.choice(PLAIN) for _ in range(rng.randint(0, 8))]
    payload = rng.choice(PAYLOADS)
    out = b""
    for i, part in enumerate(parts):
        if part == b"FRAME":  # a frame that ends exactly at, before or after the end of the stream
            rest = sum(len(p) for p in parts[i + 1 :] if p != b"FRAME") + 9 * parts[i + 1 :].count(b"FRAME")
            rest += len(payload)
            part = b"\x95" + struct.pack("<Q", rng.choice([rest, max(rest - rng.randint(1, 5), 0), rest + 3]))
        out += part
    return out + payload


@pytest.mark.parametrize("seed", range(4))
def test_whenever_an_unpickler_would_import_the_scanner_says_unsafe(seed: int) -> None:
    rng = random.Random(seed)
    missed = []
    reached = 0
    for _ in range(10_000):
        data = _stream(rng)
        if not reaches_an_import(data):
            continue
        reached += 1
        report = scan_stream("model.pkl", io.BytesIO(data))
        if report.verdict != "unsafe":
            missed.append((data, report))
    assert reached > 2_000  # the generator does reach the payload often
    assert missed == []


PAYLOAD = b"cos\nsystem\n(S'echo hi'\ntR."
FOUND = {
    # pickle.load treats frames as read-ahead hints: a FRAME inside another is accepted.
    "nested-frame": b"\x95" + struct.pack("<Q", len(PAYLOAD) + 9) + b"\x95" + struct.pack("<Q", len(PAYLOAD)) + PAYLOAD,
    "op-past-frame": b"\x95\x01\x00\x00\x00\x00\x00\x00\x00" + PAYLOAD,
    # BUILD with a None (C) or any falsy (Python) state on a plain value is a no-op.
    "build-none": b"K\x05Nb0" + PAYLOAD,
    "build-empty-dict": b"I5\n]b0" + PAYLOAD,
    "build-none-pair": b"S'a'\nNN\x86b0" + PAYLOAD,
    # READONLY_BUFFER needs no out-of-band buffer when the top of the stack is bytes.
    "readonly-buffer": b"C\x01a\x980" + PAYLOAD,
    # C's strtol reads INT 010 as octal; LONG parses with base 0 in both unpicklers.
    "int-octal": b"I010\n0" + PAYLOAD,
    "long-hex": b"L0x10\n0" + PAYLOAD,
    # The module is imported (running its code) before the bad attribute name fails.
    "bad-name-after-import": b"cantigravity\nnot a name\n.",
    "bad-submodule-after-import": b"cantigravity.not a name\nx\n.",
}


@pytest.mark.parametrize("case", sorted(FOUND))
def test_each_disagreement_found_once_stays_unsafe(case: str) -> None:
    data = FOUND[case]
    assert reaches_an_import(data)  # the real unpicklers get to the import
    report = scan_stream("model.pkl", io.BytesIO(data))
    assert report.verdict == "unsafe", report


@pytest.mark.parametrize(
    "data",
    [b"NR.", b"\x88)R.", b"S'a'\n)\x81.", b"(K\x01o.", b"K\x05S'x'\nb."],
    ids=["call-none", "call-bool", "newobj-str", "obj-int", "build-state-on-int"],
)
def test_calling_or_building_a_plain_value_fails_in_every_unpickler_and_is_not_unsafe(data: bytes) -> None:
    assert not reaches_an_import(data + PAYLOAD)
    for unpickler in _UNPICKLERS:
        with pytest.raises(Exception) as info:
            unpickler(io.BytesIO(data)).load()
        assert not isinstance(info.value, _Reached)
    assert scan_stream("model.pkl", io.BytesIO(data + PAYLOAD)).verdict != "unsafe"
