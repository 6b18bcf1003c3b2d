"""The Hub's ids aiprov derives (`core.hf`): equal to what git computes, and a commit id names one manifest."""

from __future__ import annotations

import subprocess
from pathlib import Path

from aiprov.core.digest import Digest
from aiprov.core.hf import commit_id, is_commit_id, lfs_pointer, pointer_oid, tree, tree_ids
from aiprov.core.manifest import Manifest, ManifestEntry

FILES = {"a.txt": b"1", "sub/b.bin": b"22", "sub/deep/c": b"333", "sub-x": b"4", "sub.y": b"5", "z/\u00e9.txt": b"6"}


def _entries() -> list[ManifestEntry]:
    return [ManifestEntry(p, len(d), Digest.of(d)) for p, d in FILES.items()]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_pointer_and_tree_ids_are_the_ids_git_computes_for_the_lfs_pointers(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q", ".")
    entries = _entries()
    for e in entries:
        (tmp_path / e.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / e.path).write_bytes(lfs_pointer(e.sha256, e.size))
    _git(tmp_path, "add", "-A")
    root = _git(tmp_path, "write-tree")
    ids = tree_ids(entries)
    assert ids[""] == root
    for directory in ("sub", "sub/deep", "z"):
        assert ids[directory] == _git(tmp_path, "rev-parse", f"{root}:{directory}")
    for e in entries:
        assert pointer_oid(e) == _git(tmp_path, "hash-object", e.path)


def test_commit_id_is_the_manifest_digest_prefix_and_differs_per_manifest() -> None:
    one = Manifest.build(_entries())
    other = Manifest.build([*_entries(), ManifestEntry("extra", 1, Digest.of(b"x"))])
    assert commit_id(one.digest) == one.digest.hex[:40]
    assert is_commit_id(commit_id(one.digest))
    assert commit_id(one.digest) != commit_id(other.digest)
    assert not is_commit_id(one.digest.hex) and not is_commit_id("main") and not is_commit_id("A" * 40)


def test_tree_lists_children_or_everything_below_and_none_for_a_missing_directory() -> None:
    entries = _entries()
    top = [i.path for i in tree(entries, "", recursive=False) or []]
    assert top == ["a.txt", "sub", "sub-x", "sub.y", "z"]
    below = tree(entries, "sub", recursive=True) or []
    assert [(i.path, i.is_file) for i in below] == [("sub/b.bin", True), ("sub/deep", False), ("sub/deep/c", True)]
    assert tree(entries, "nope", recursive=True) is None
    assert tree(entries, "a.txt", recursive=False) is None  # a file is not a directory
