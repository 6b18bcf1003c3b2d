"""The scanner's value types: a finding, one file's report, a model's report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["safe", "unsafe", "unsupported"]


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a file is not safe: a short machine-readable `reason` (e.g. `dangerous-global`) and a human `detail`."""

    reason: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class FileReport:
    """The verdict on one file; `path` is only a label (a manifest path), `format` what its content is."""

    path: str
    format: str
    verdict: Verdict
    findings: tuple[Finding, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "verdict": self.verdict,
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class ScanReport:
    """The verdict on a model: unsafe if any file is, else unsupported if any file is, else safe."""

    verdict: Verdict
    files: tuple[FileReport, ...]

    @classmethod
    def of(cls, files: tuple[FileReport, ...]) -> ScanReport:
        return cls(overall(f.verdict for f in files), files)

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "files": [f.to_json() for f in self.files]}

    @property
    def findings(self) -> list[dict[str, str]]:
        """Every finding as {"path", "reason", "detail"}: what `UnsafeModelError` carries."""
        return [{"path": f.path, **x.to_json()} for f in self.files for x in f.findings]


def overall(verdicts: Any) -> Verdict:
    """Unsafe beats unsupported beats safe; no verdicts at all is safe."""
    seen = set(verdicts)
    if "unsafe" in seen:
        return "unsafe"
    if "unsupported" in seen:
        return "unsupported"
    return "safe"
