"""`aiprov pull` writes every file of a version or none (issue 14): the files are verified in a staging
directory and moved into place only once all of them are; on an error the destination is as it was and no
temporary directory is left. Into an existing directory, files already right are kept, files with other bytes
are refused unless --force, and files the version does not have are left alone (docs/cli.md, `pull`)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import MakeModel
from tests.support.cli import cli, cli_json

FILES = {"config.json": b'{"layers": 2}', "weights/w.bin": b"\x01" * 100_000}


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root`, hidden ones included, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def push_and_tamper(home: Path, make_model: MakeModel) -> None:
    """Push FILES as alice/m, then flip one byte of the weights' blob in the store (same size)."""
    cli_json(home, "push", str(make_model(FILES)), "--name", "alice/m")
    [blob] = [p for p in (home / "blobs" / "sha256").rglob("*") if p.is_file() and p.stat().st_size == 100_000]
    with open(blob, "r+b") as f:
        f.seek(50_000)
        f.write(b"\x02")


def test_pull_of_a_tampered_blob_leaves_no_directory_and_no_temporary_one(
    home: Path, make_model: MakeModel, tmp_path: Path
) -> None:
    push_and_tamper(home, make_model)
    target = tmp_path / "pulls"
    target.mkdir()
    code, _, err = cli(home, "pull", "alice/m", str(target / "new" / "deeper" / "out"))
    assert code == 5 and "weights/w.bin" in err and "does not match" in err, err
    assert list(target.iterdir()) == []  # no `out`, no missing parent left made, no `.out.aiprov-pull-*`


def test_pull_of_a_tampered_blob_into_an_existing_directory_changes_nothing(
    home: Path, make_model: MakeModel, tmp_path: Path
) -> None:
    push_and_tamper(home, make_model)
    out = tmp_path / "out"
    (out / "weights").mkdir(parents=True)
    (out / "notes.txt").write_bytes(b"mine")
    (out / "config.json").write_bytes(b"older")
    before = tree(out)
    code, _, err = cli(home, "pull", "alice/m", str(out), "--force")
    assert code == 5, err
    assert tree(out) == before and sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt", "weights"]


def test_pull_into_an_existing_directory_keeps_its_other_files_and_refuses_other_bytes_unless_forced(
    home: Path, make_model: MakeModel, tmp_path: Path
) -> None:
    cli_json(home, "push", str(make_model(FILES)), "--name", "alice/m")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"mine")
    (out / "config.json").write_bytes(b"older")
    code, _, err = cli(home, "pull", "alice/m", str(out))
    assert code == 2 and "exists with other content" in err and "--force" in err
    assert tree(out) == {"notes.txt": b"mine", "config.json": b"older"}  # refused before anything was written
    assert cli_json(home, "pull", "alice/m", str(out), "--force")["dest"] == str(out)
    assert tree(out) == {**FILES, "notes.txt": b"mine"}
    assert cli_json(home, "pull", "alice/m", str(out))["version"] == 1  # all there already: nothing rewritten
    assert tree(out) == {**FILES, "notes.txt": b"mine"}


def test_pull_to_a_path_that_is_a_file_or_where_a_directory_takes_a_files_place_is_refused(
    home: Path, make_model: MakeModel, tmp_path: Path
) -> None:
    cli_json(home, "push", str(make_model(FILES)), "--name", "alice/m")
    (tmp_path / "file").write_bytes(b"x")
    code, _, err = cli(home, "pull", "alice/m", str(tmp_path / "file"))
    assert code == 2 and "not a directory" in err, err
    out = tmp_path / "out"
    (out / "config.json").mkdir(parents=True)
    code, _, err = cli(home, "pull", "alice/m", str(out), "--force")
    assert code == 2 and "is a directory" in err, err
    assert tree(out) == {} and [p.name for p in out.iterdir()] == ["config.json"]
