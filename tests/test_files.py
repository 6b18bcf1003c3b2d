import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from tests.conftest import MakeModel

from aiprov.adapters.files import LocalFile, hash_file, hash_model, model_files
from aiprov.errors import InvalidInput


def sha256sum(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["sha256sum", *sorted(p.name for p in path.rglob("*") if p.is_file())],
        cwd=path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def test_per_file_digests_equal_sha256sum(make_model: MakeModel) -> None:
    root = make_model({"a.bin": os.urandom(5_000_001), "b.txt": b"hello", "empty": b""})
    manifest = hash_model(root)
    assert {e.path: e.sha256.hex for e in manifest.entries} == sha256sum(root)
    assert {e.path: e.size for e in manifest.entries} == {"a.bin": 5_000_001, "b.txt": 5, "empty": 0}


def test_nested_folders_and_empty_files_are_listed_with_posix_paths(make_model: MakeModel) -> None:
    root = make_model({"x/y/z.bin": b"1", "x/empty": b"", "top": b"2"})
    assert [f.path for f in model_files(root)] == ["top", "x/empty", "x/y/z.bin"]


def test_single_file_model_is_named_after_the_file(make_model: MakeModel) -> None:
    root = make_model({"clf.pkl": b"abc"})
    assert [e.path for e in hash_model(root / "clf.pkl").entries] == ["clf.pkl"]


def test_git_files_at_the_top_are_ignored(make_model: MakeModel) -> None:
    root = make_model({"m.bin": b"1", ".gitignore": b"x", ".git/HEAD": b"ref", "sub/.gitignore": b"kept"})
    assert [f.path for f in model_files(root)] == ["m.bin", "sub/.gitignore"]


def test_symlinks_are_refused(make_model: MakeModel) -> None:
    root = make_model({"m.bin": b"1"})
    (root / "link").symlink_to(root / "m.bin")
    with pytest.raises(InvalidInput, match="symbolic link"):
        model_files(root)


def test_empty_directories_are_refused(make_model: MakeModel, tmp_path: Path) -> None:
    root = make_model({"m.bin": b"1"})
    (root / "nothing").mkdir()
    with pytest.raises(InvalidInput, match="empty directory"):
        model_files(root)
    (tmp_path / "void").mkdir()
    with pytest.raises(InvalidInput, match="contains no files"):
        model_files(tmp_path / "void")


def test_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        model_files(tmp_path / "nope")


def test_unreadable_file_is_refused() -> None:
    """Root reads every file, so the check runs in a forked child that dropped to `nobody` first."""
    root = Path(tempfile.mkdtemp(prefix="aiprov-unreadable-"))
    root.chmod(0o755)
    (root / "ok.bin").write_bytes(b"1")
    (root / "secret.bin").write_bytes(b"2")
    (root / "secret.bin").chmod(0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the error message through the pipe, never return into pytest
        code = 4
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(pwd.getpwnam("nobody").pw_gid)
                os.setuid(pwd.getpwnam("nobody").pw_uid)
            hash_model(root)
            code = 0
        except InvalidInput as e:
            os.write(write_end, e.diagnostics().encode())
            code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        _, status = os.waitpid(pid, 0)
        message = os.read(read_end, 4096).decode()
        assert os.waitstatus_to_exitcode(status) == 3
        assert message.startswith("cannot read") and "secret.bin" in message
    finally:
        os.close(read_end)
        shutil.rmtree(root)


def test_sides_see_every_byte_in_order_even_when_they_lag(tmp_path: Path) -> None:
    """Large files feed their sides (the CID builders) on helper threads through a few shared buffers: a slow side
    must still see exactly the file's bytes, in order, and a failing side fails the hash."""
    import time

    data = os.urandom(3 * 1024 * 1024) * 7  # 21 MiB: six buffers' worth, more than the pipeline holds
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    file = LocalFile("big.bin", path, len(data))

    class Slow:
        def __init__(self) -> None:
            self.h = hashlib.sha256()

        def write(self, chunk: memoryview) -> None:
            time.sleep(0.01)
            self.h.update(chunk)

    sides = [Slow(), Slow()]
    entry = hash_file(file, sides=sides)
    assert entry.sha256.hex == hashlib.sha256(data).hexdigest()
    assert all(s.h.hexdigest() == entry.sha256.hex for s in sides)

    class Broken:
        def write(self, chunk: memoryview) -> None:
            raise InvalidInput("the side failed")

    with pytest.raises(InvalidInput, match="the side failed"):
        hash_file(file, sides=[Slow(), Broken()])
