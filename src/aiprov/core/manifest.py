"""Model manifests: what a model version *is*.

A manifest is the sorted list of a model's files (POSIX relative path, size, SHA-256). Its digest, the SHA-256 of
its canonical JSON, identifies the version. A single-file model is a one-entry manifest named after the file.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from aiprov.core.canonical import canonical_json
from aiprov.core.digest import Digest
from aiprov.core.text import CONTROLS, check_unicode
from aiprov.errors import InvalidInput

MANIFEST_TYPE = "https://aiprov.dev/manifest/v1"

# Ignored at the top of a model directory, as OpenSSF model-signing ignores them, so both tools describe the same
# directory with the same file list.
IGNORED_TOP_LEVEL = frozenset({".git", ".github", ".gitattributes", ".gitignore"})


MAX_COMPONENT_BYTES = 255
"""The longest file or directory name, in UTF-8 bytes: what ext4, APFS and NTFS all store."""
MAX_PATH_BYTES = 4096
"""The longest path inside a model, in UTF-8 bytes (Linux's PATH_MAX)."""

# C0 and C1 control characters and DEL: a terminal would act on them (a newline, an escape sequence) where a
# listing shows the name; and the bidirectional embeddings, overrides and isolates, which make a name display as
# another (`txt.exe` shown as `exe.txt`). Other format characters (ZWJ, ZWNJ) are parts of honest names.
_UNSHOWABLE = re.compile(f"[{CONTROLS}\u202a-\u202e\u2066-\u2069]")


def git_part(path: str) -> str | None:
    """The component of `path` that makes it git metadata, or None.

    That is a `.git` component anywhere (any case: macOS and Windows file systems ignore it, `.GIT` is `.git`
    there) or a first component that model-signing and `aiprov push` ignore (IGNORED_TOP_LEVEL). A version never
    holds such a path: written by `pull`, `.git/hooks/...` or `.git/config` would run code the next time the user
    runs git in that folder, and a manifest must not carry files that a local push of the same folder would skip
    (they would be neither pushed nor scanned). Any other name, `.gitkeep` or `sub/.gitignore`, is a plain file.
    """
    parts = path.split("/")
    if parts[0].lower() in IGNORED_TOP_LEVEL:
        return parts[0]
    return next((part for part in parts if part.lower() == ".git"), None)


def refuse_git_paths(paths: Iterable[str], where: str) -> None:
    """Raise InvalidInput naming the first of `paths` that is git metadata (`git_part`); `where` holds them."""
    for path in paths:
        part = git_part(path)
        if part is not None:
            raise InvalidInput(
                f"{where} holds {path!r}: git metadata ({part!r}) is never part of a model",
                hint="a model version never holds git metadata; leave it out",
            )


def check_relative_path(path: str) -> str:
    """Return `path` if it is a clean POSIX relative path inside a model; raise InvalidInput otherwise.

    The structural rule every manifest obeys (also one recorded before `check_model_paths` existed): a path that
    can be laid out under a directory without leaving it.
    """
    if not path or path.startswith("/") or "\x00" in path or "\\" in path:
        raise InvalidInput(f"not a relative POSIX path: {path!r}")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidInput(f"path must not contain empty, '.' or '..' parts: {path!r}")
    return path


def check_file_path(path: str) -> str:
    """Return `path` if a new version may record it; raise InvalidInput naming the rule it breaks.

    A clean relative path (`check_relative_path`) of valid UTF-8, without control or bidirectional-control
    characters, each part at most MAX_COMPONENT_BYTES and the whole at most MAX_PATH_BYTES (UTF-8).
    """
    shown = ascii(path) if len(path) <= 80 else f"{path[:80]!a}…"
    check_unicode(path, what=f"file path {shown}")
    if (bad := _UNSHOWABLE.search(path)) is not None:
        raise InvalidInput(
            f"file path {shown} contains the control character U+{ord(bad[0]):04X}",
            hint="file names may not contain control characters (newline, tab, escape, bidirectional controls)",
        )
    if (size := len(path.encode("utf-8"))) > MAX_PATH_BYTES:
        raise InvalidInput(f"file path {shown} is {size} bytes long, over {MAX_PATH_BYTES}")
    check_relative_path(path)
    for part in path.split("/"):
        if (size := len(part.encode("utf-8"))) > MAX_COMPONENT_BYTES:
            raise InvalidInput(f"a name in file path {shown} is {size} bytes long, over {MAX_COMPONENT_BYTES}")
    return path


def _fold(text: str) -> str:
    """What a case-insensitive, normalisation-insensitive file system (APFS, NTFS) sees as the same name."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def check_model_paths(paths: Iterable[str]) -> None:
    """Check the paths of a new version: each one (`check_file_path`), and that no two name one file on macOS.

    Paths, or directories, that differ only by case or Unicode normalisation (`é` as one code point or two) are
    one file on APFS and NTFS: such a model would lose a file, or change its manifest, when pulled there.
    Raises InvalidInput.
    """
    seen: dict[str, str] = {}
    for path in paths:
        check_file_path(path)
        parts = path.split("/")
        for end in range(1, len(parts) + 1):
            prefix = "/".join(parts[:end])
            other = seen.setdefault(_fold(prefix), prefix)
            if other != prefix:
                raise InvalidInput(
                    f"file paths {other!a} and {prefix!a} differ only by case or Unicode normalisation",
                    hint="macOS and Windows would store them as one file: rename one",
                )


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file of a model."""

    path: str
    size: int
    sha256: Digest

    def __post_init__(self) -> None:
        check_relative_path(self.path)
        if self.size < 0:
            raise InvalidInput(f"negative size for {self.path!r}")

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256.hex}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ManifestEntry:
        try:
            return cls(str(value["path"]), int(value["size"]), Digest(str(value["sha256"])))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"malformed manifest entry: {value!r}") from e


@dataclass(frozen=True, slots=True)
class Manifest:
    """A model version's files, sorted by path, without duplicates."""

    entries: tuple[ManifestEntry, ...]
    _digest: Digest | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        paths = [e.path for e in self.entries]
        if not paths:
            raise InvalidInput("a model has at least one file")
        if paths != sorted(paths):
            raise InvalidInput("manifest entries must be sorted by path")
        for a, b in pairwise(paths):
            if a == b:
                raise InvalidInput(f"duplicate path in manifest: {a!r}")
            if b.startswith(a + "/"):
                raise InvalidInput(f"{a!r} is both a file and a directory")

    @classmethod
    def build(cls, entries: Iterable[ManifestEntry]) -> Manifest:
        """A manifest of `entries` in any order."""
        return cls(tuple(sorted(entries, key=lambda e: e.path)))

    def to_json(self) -> dict[str, Any]:
        return {"type": MANIFEST_TYPE, "files": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Manifest:
        if value.get("type") != MANIFEST_TYPE or not isinstance(value.get("files"), list):
            raise InvalidInput(f"not an aiprov manifest (type must be {MANIFEST_TYPE!r} with a files list)")
        return cls.build(ManifestEntry.from_json(f) for f in value["files"])

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def digest(self) -> Digest:
        """The version's identity: SHA-256 of the canonical manifest (computed once: it costs a canonical JSON)."""
        if self._digest is None:
            object.__setattr__(self, "_digest", Digest.of(self.canonical()))
        assert self._digest is not None
        return self._digest

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def blob_digests(self) -> set[Digest]:
        return {e.sha256 for e in self.entries}
