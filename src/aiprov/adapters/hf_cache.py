"""A local Hugging Face cache, as `huggingface_hub` lays it out, read to verify the snapshots it holds.

    <cache>/models--OWNER--NAME/snapshots/<commit>/<path>   a symlink to ../../blobs/<etag> (or a copy)

The cache is `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`, else
`~/.cache/huggingface/hub`, as the client picks it. A snapshot's files are hashed where their symlinks point: those
are the bytes a program loading the model reads. A symlink must lead to a regular file in its repo's `blobs/`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aiprov.adapters.files import LocalFile
from aiprov.core.manifest import IGNORED_TOP_LEVEL
from aiprov.core.names import ModelName
from aiprov.errors import InvalidInput

REPO_PREFIX = "models--"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One snapshot folder of the cache: the model it is of (`owner/name`) and its commit id (the folder's name)."""

    model: str
    commit: str
    folder: Path


def default_cache() -> Path:
    """The cache folder `huggingface_hub` uses in this environment."""
    if explicit := os.environ.get("HF_HUB_CACHE"):
        return Path(explicit).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "huggingface" / "hub"


def repo_model(folder: Path) -> str:
    """The `owner/name` of a repo folder `models--OWNER--NAME`. Raises InvalidInput for another folder."""
    if not folder.name.startswith(REPO_PREFIX):
        raise InvalidInput(f"{folder} is not a model folder of a Hugging Face cache (models--OWNER--NAME)")
    name = folder.name[len(REPO_PREFIX) :].replace("--", "/")
    return str(ModelName.parse(name))


def find_snapshots(location: Path) -> list[Snapshot]:
    """The snapshots at `location`: a snapshot folder, a repo folder (each of its snapshots) or a cache (all).

    Raises InvalidInput if there is none.
    """
    if not location.is_dir():
        raise InvalidInput(f"{location} is not a directory")
    if location.parent.name == "snapshots" and location.parent.parent.name.startswith(REPO_PREFIX):
        return [Snapshot(repo_model(location.parent.parent), location.name, location)]
    repos = [location] if location.name.startswith(REPO_PREFIX) else sorted(location.glob(f"{REPO_PREFIX}*"))
    found = [
        Snapshot(repo_model(repo), folder.name, folder)
        for repo in repos
        for folder in sorted((repo / "snapshots").glob("*"))
        if folder.is_dir()
    ]
    if not found:
        raise InvalidInput(
            f"no Hugging Face model snapshots in {location}",
            hint="give the cache, a models--OWNER--NAME folder or one of its snapshots/<commit> folders",
        )
    return found


def snapshot_files(folder: Path) -> list[LocalFile]:
    """The files of a snapshot, sorted by path, each located where its symlink points.

    Raises InvalidInput for a symlink that leads anywhere but a regular file in the repo's `blobs/`, or for a
    special file.
    """
    blobs = (folder.parent.parent / "blobs").resolve()
    files: list[LocalFile] = []
    _walk(folder, "", blobs, files)
    files.sort(key=lambda f: f.path)
    return files


def _walk(directory: Path, prefix: str, blobs: Path, out: list[LocalFile]) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
        raise InvalidInput(f"cannot list {directory}: {e.strerror}") from e
    for entry in entries:
        if not prefix and entry.name in IGNORED_TOP_LEVEL:
            continue
        rel, location = prefix + entry.name, Path(entry.path)
        if entry.is_symlink():
            target = location.resolve()
            if target.parent != blobs or not target.is_file():
                raise InvalidInput(f"{location} is a symlink to {target}, not to a file in {blobs}")
            out.append(LocalFile(rel, target, target.stat().st_size))
        elif entry.is_dir(follow_symlinks=False):
            _walk(location, rel + "/", blobs, out)
        elif entry.is_file(follow_symlinks=False):
            out.append(LocalFile(rel, location, entry.stat(follow_symlinks=False).st_size))
        else:
            raise InvalidInput(f"{location} is not a regular file (device, socket or fifo)")
