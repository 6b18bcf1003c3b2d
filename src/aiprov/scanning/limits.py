"""How much work scanning one file may cost: decompressed bytes (a ratio and an absolute cap) and time.

A 65 KB gzip can hold 64 MB of pickle opcodes and a zip of zips far more; without a bound one upload holds a
server thread for minutes. Every byte a decompressor produces while one file is scanned (gzip, bz2, lzma, xz,
zlib, deflated zip members, at any depth) is charged to that file's `Budget`, and the scan checks a deadline as
it decompresses and every few thousand pickle opcodes. Past either limit the file is refused (`LimitExceeded`):
the clock is passed in, so the rule is a pure function of the bytes and the readings of that clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiprov.scanning.report import Finding

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """The limits of one file's scan (defaults are `aiprov.config.Settings`' defaults).

    A file of `size` bytes may decompress to `min(max_bytes, allowance + max_ratio * size)` bytes in all, and
    its scan may take `max_seconds` of `clock` (seconds, monotonic).
    """

    max_ratio: int = 100
    allowance: int = 8 * MiB
    max_bytes: int = 4096 * MiB
    max_seconds: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def budget(self, size: int) -> Budget:
        """A fresh budget for one file of `size` bytes, its deadline counted from now."""
        return Budget(self, size)


class LimitExceeded(Exception):
    """The scan of a file went past a limit; `finding` says which (the file is refused)."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.detail)
        self.finding = finding


class Budget:
    """What is left of one file's limits while it is scanned; shared by every container level inside it."""

    __slots__ = ("_clock", "cap", "deadline", "limits", "used")

    def __init__(self, limits: ScanLimits, size: int) -> None:
        self.limits = limits
        self.cap = min(limits.max_bytes, limits.allowance + limits.max_ratio * size)
        self.used = 0
        self._clock = limits.clock
        self.deadline = self._clock() + limits.max_seconds

    def require(self, n: int) -> None:
        """Raise LimitExceeded unless `n` more decompressed bytes fit in what is left."""
        if self.used + n > self.cap:
            lim = self.limits
            raise LimitExceeded(
                Finding(
                    "decompression-limit",
                    f"decompresses to more than {self.cap} bytes (the limit is {lim.allowance} + {lim.max_ratio} x "
                    f"the file's size, at most {lim.max_bytes}: settings scan_ratio_allowance_mb, scan_max_ratio, "
                    "scan_max_decompressed_mb)",
                )
            )

    def spend(self, n: int) -> None:
        """Charge `n` decompressed bytes, then check the clock. Raises LimitExceeded."""
        self.require(n)
        self.used += n
        self.check_time()

    def check_time(self) -> None:
        """Raises LimitExceeded once the deadline has passed."""
        if self._clock() > self.deadline:
            raise LimitExceeded(
                Finding(
                    "time-limit",
                    f"scanning took longer than {self.limits.max_seconds:g} s (setting scan_max_seconds)",
                )
            )
