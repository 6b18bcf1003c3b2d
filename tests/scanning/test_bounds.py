"""Scanning is bounded: decompressed bytes (an allowance plus a ratio, under a cap) and time, each at its edge."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import zipfile
import zlib
from collections.abc import Callable, Iterator

import pytest
from scan_corpus import nested_zip_bomb, zip_of

from aiprov.scanning import ScanLimits, scan_stream
from aiprov.scanning.limits import MiB

NONE_POPS = b"\x80\x04" + b"N0" * (2 * MiB) + b"N."
"""A valid, harmless 4 MiB pickle of two million NONE/POP pairs: what a decompression bomb holds."""

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zlib": zlib.compress,
}


def _limits(cap: int, **kw: object) -> ScanLimits:
    """Limits whose decompressed cap is exactly `cap` bytes whatever the file's size (ratio 1, allowance cap-size)."""
    return ScanLimits(max_ratio=1, allowance=cap, max_bytes=cap, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_decompressed_size_at_the_cap_passes_and_one_byte_more_is_refused(compression: str) -> None:
    payload = pickle.dumps({"weights": list(range(2000))}, protocol=4)
    data = COMPRESSORS[compression](payload)
    at_edge = scan_stream("m.joblib", io.BytesIO(data), limits=_limits(len(payload)))
    assert at_edge.verdict == "safe" and at_edge.format == f"pickle+{compression}", at_edge
    over = scan_stream("m.joblib", io.BytesIO(data), limits=_limits(len(payload) - 1))
    assert over.verdict == "unsafe" and [f.reason for f in over.findings] == ["decompression-limit"], over


def test_the_cap_is_the_allowance_plus_ratio_times_size_and_never_above_max_bytes() -> None:
    payload = pickle.dumps(list(range(5000)), protocol=4)
    data = gzip.compress(payload)
    ratio_edge = ScanLimits(max_ratio=2, allowance=len(payload) - 2 * len(data), max_bytes=10 * MiB)
    assert scan_stream("m", io.BytesIO(data), limits=ratio_edge).verdict == "safe"
    below = ScanLimits(max_ratio=2, allowance=len(payload) - 2 * len(data) - 1, max_bytes=10 * MiB)
    assert scan_stream("m", io.BytesIO(data), limits=below).verdict == "unsafe"
    capped = ScanLimits(max_ratio=1000, allowance=10 * MiB, max_bytes=len(payload) - 1)
    assert scan_stream("m", io.BytesIO(data), limits=capped).findings[0].reason == "decompression-limit"


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_decompression_bombs_are_refused_under_the_default_ratio(compression: str) -> None:
    bomb = COMPRESSORS[compression](NONE_POPS)
    assert len(bomb) * 100 < len(NONE_POPS)  # a bomb by the default ratio
    limits = ScanLimits(allowance=MiB)  # the default ratio and cap; a small allowance keeps the test fast
    report = scan_stream("model.joblib", io.BytesIO(bomb), limits=limits)
    assert report.verdict == "unsafe" and report.findings[0].reason == "decompression-limit", report
    assert "scan_max_ratio" in report.findings[0].detail


def test_a_zip_of_nested_zips_is_refused() -> None:
    layer = nested_zip_bomb()
    report = scan_stream("model.zip", io.BytesIO(layer), limits=ScanLimits())
    assert len(layer) < 200_000 and report.verdict == "unsafe", report
    assert [f.reason for f in report.findings] == ["decompression-limit"]


def test_stored_zip_members_cost_nothing_and_deflated_ones_count_at_their_size() -> None:
    weights = bytes(3 * MiB)
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as z:
        z.writestr("weights.bin", weights)
    assert scan_stream("m.zip", stored, limits=_limits(0)).verdict != "unsafe"
    deflated = zip_of({"weights.bin": weights}, zipfile.ZIP_DEFLATED)
    assert scan_stream("m.zip", io.BytesIO(deflated), limits=_limits(len(weights))).verdict != "unsafe"
    refused = scan_stream("m.zip", io.BytesIO(deflated), limits=_limits(len(weights) - 1))
    assert refused.findings[0].reason == "decompression-limit"


class SteppedClock:
    """A clock that reads `start` once (when the budget is made), then `then` at every later reading."""

    def __init__(self, start: float, then: float) -> None:
        self.readings: Iterator[float] = iter([start])
        self.then = then
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return next(self.readings, self.then)


@pytest.mark.parametrize(
    "data",
    [NONE_POPS[: 2 + 2 * 40_000] + b"N.", gzip.compress(NONE_POPS[: 2 + 2 * 40_000] + b"N.")],
    ids=["pickle-opcodes", "gzip-stream"],
)
def test_time_at_the_limit_passes_and_past_it_is_refused(data: bytes) -> None:
    on_time = SteppedClock(100.0, 130.0)
    report = scan_stream("m.pkl", io.BytesIO(data), limits=ScanLimits(max_seconds=30.0, clock=on_time))
    assert report.verdict == "safe" and on_time.calls > 1, report
    late = SteppedClock(100.0, 130.001)
    report = scan_stream("m.pkl", io.BytesIO(data), limits=ScanLimits(max_seconds=30.0, clock=late))
    assert report.verdict == "unsafe" and [f.reason for f in report.findings] == ["time-limit"], report
    assert "scan_max_seconds" in report.findings[0].detail


def test_a_bomb_within_the_ratio_is_still_stopped_by_the_real_clock() -> None:
    bomb = gzip.compress(b"\x80\x04" + b"N0" * (8 * MiB) + b"N.")
    roomy = ScanLimits(max_ratio=10_000, allowance=64 * MiB, max_seconds=0.2)
    report = scan_stream("model.joblib", io.BytesIO(bomb), limits=roomy)
    assert report.verdict == "unsafe" and report.findings[0].reason == "time-limit", report
