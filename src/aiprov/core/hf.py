"""The Hugging Face Hub's names for what a version already is: its commit id, and git object ids of its files.

A version's **commit id** is the first 40 hex digits of its manifest digest (the SHA-256 of its canonical
manifest JSON). Within one model a manifest is at most one version (a push of the same bytes is deduplicated),
so the commit id names exactly one version of the model, and anyone holding the manifest recomputes it.

Every file is served as the Hub serves a Git LFS file: its ETag and `lfs.oid` are its SHA-256, and its git `oid`
is the git blob id of the LFS pointer file that describes it (`lfs_pointer`), computed from the sha256 and size.
A directory's `oid` is the git tree id of the pointers below it. These are the ids `git` would compute for a
repository holding each file through LFS; they are derived, never stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from aiprov.core.digest import Digest
from aiprov.core.manifest import ManifestEntry

COMMIT_HEX_DIGITS = 40
"""The length of a commit id: a git SHA-1's, which is what the Hub's clients recognise as a commit."""


def commit_id(manifest_digest: Digest) -> str:
    """The 40-hex commit id of the version whose manifest has `manifest_digest` (its first 40 hex digits)."""
    return manifest_digest.hex[:COMMIT_HEX_DIGITS]


def is_commit_id(text: str) -> bool:
    """Whether `text` has the form of a commit id: exactly 40 lowercase hex digits."""
    return len(text) == COMMIT_HEX_DIGITS and all(c in "0123456789abcdef" for c in text)


def lfs_pointer(sha256: Digest, size: int) -> bytes:
    """The Git LFS pointer file (spec v1) of a file with this digest and size."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256.hex}\nsize {size}\n".encode()


def git_object_id(kind: str, data: bytes) -> str:
    """The git object id (SHA-1, hex) of an object of `kind` ("blob", "tree") with content `data`."""
    header = f"{kind} {len(data)}\0".encode()
    return hashlib.sha1(header + data, usedforsecurity=False).hexdigest()


def pointer_oid(entry: ManifestEntry) -> str:
    """The git blob id of the file's LFS pointer: the `oid` the Hub lists for an LFS file."""
    return git_object_id("blob", lfs_pointer(entry.sha256, entry.size))


@dataclass(frozen=True, slots=True)
class TreeItem:
    """One item of a tree listing: a file (with its manifest entry) or a directory."""

    path: str
    entry: ManifestEntry | None = None
    oid: str = ""

    @property
    def is_file(self) -> bool:
        return self.entry is not None


def tree_ids(entries: Iterable[ManifestEntry]) -> dict[str, str]:
    """The git tree id of every directory of the manifest (the root is `""`), as git hashes a tree.

    A tree lists its children sorted by name, a directory's name compared as if it ended in "/"; files are mode
    100644 pointing at their LFS pointer blob, directories mode 40000 at their tree.
    """
    children: dict[str, dict[str, tuple[bytes, bytes]]] = {"": {}}
    for e in entries:
        parts = e.path.split("/")
        for depth in range(1, len(parts)):
            children.setdefault("/".join(parts[:depth]), {})
        parent = "/".join(parts[:-1])
        children[parent][parts[-1]] = (b"100644", bytes.fromhex(pointer_oid(e)))
    ids: dict[str, str] = {}
    for directory in sorted(children, key=lambda d: d.count("/") if d else -1, reverse=True):
        items = children[directory]
        for sub in (d for d in children if d and d.rpartition("/")[0] == directory):
            items[sub.rpartition("/")[2]] = (b"40000", bytes.fromhex(ids[sub]))
        body = b"".join(
            mode + b" " + name.encode() + b"\0" + oid
            for name, (mode, oid) in sorted(items.items(), key=lambda kv: kv[0] + ("/" if kv[1][0] == b"40000" else ""))
        )
        ids[directory] = git_object_id("tree", body)
    return ids


def tree(entries: Iterable[ManifestEntry], directory: str, *, recursive: bool) -> list[TreeItem] | None:
    """The items under `directory` ("" for the root), sorted by path; None if the manifest has no such directory.

    Without `recursive` only its direct children (files and directories); with it, everything below.
    """
    listed = list(entries)
    ids = tree_ids(listed)
    if directory not in ids:
        return None
    prefix = f"{directory}/" if directory else ""
    items: list[TreeItem] = []
    for d in ids:
        if d and d.startswith(prefix) and (recursive or "/" not in d[len(prefix) :]):
            items.append(TreeItem(d, None, ids[d]))
    for e in listed:
        if e.path.startswith(prefix) and (recursive or "/" not in e.path[len(prefix) :]):
            items.append(TreeItem(e.path, e, pointer_oid(e)))
    items.sort(key=lambda i: i.path)
    return items
