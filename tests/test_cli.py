"""The CLI as a user meets it: stable JSON, one-line diagnostics, non-zero exits, nothing written on errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests.conftest import MakeModel
from tests.support.cli import cli, cli_json, run


def state(home: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """What is visible in a home: blob files and (table, row count) for every table."""
    blobs = sorted(str(p.relative_to(home)) for p in (home / "blobs").rglob("*") if p.is_file())
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    with engine.connect() as conn:
        tables = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))]
        counts = [(t, conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in sorted(tables)]
    engine.dispose()
    return blobs, counts


def test_push_prints_the_documented_json(home: Path, make_model: MakeModel) -> None:
    root = make_model({"w.bin": b"abc", "sub/cfg.json": b"{}"})
    out = cli_json(
        home,
        "push",
        str(root),
        "--name",
        "alice/m",
        "--desc",
        "d",
        "--license",
        "MIT",
        "--tag",
        "t",
        "--dataset",
        "iris",
        "--code-rev",
        "abc123",
        "--param",
        "lr=0.1",
    )
    assert isinstance(out, dict)
    assert {"name", "version", "digest", "files", "deduplicated"} <= out.keys()
    assert (out["name"], out["version"], out["deduplicated"]) == ("alice/m", 1, False)
    assert out["files"][0] == {
        "path": "sub/cfg.json",
        "size": 2,
        "sha256": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "cid_v0": "QmbJWAESqCsf4RFCqEY7jecCashj8usXiyDNfKtZCwwzGb",  # `ipfs add` of b"{}"
        "cid_v1": "bafkreicecnx2gvntm6fbcrvnc336qze6st5u7qq7457igegamd3bzkx7ri",  # `ipfs add --cid-version=1`
    }
    again = cli_json(home, "push", str(root), "--name", "alice/m")
    assert isinstance(again, dict) and again["deduplicated"] is True and again["digest"] == out["digest"]


def test_hash_matches_push_and_needs_no_home(tmp_path: Path, home: Path, make_model: MakeModel) -> None:
    root = make_model({"w.bin": b"abc"})
    hashed = cli_json(tmp_path / "no-home-here", "hash", str(root))
    pushed = cli_json(home, "push", str(root), "--name", "alice/m")
    assert isinstance(hashed, dict) and isinstance(pushed, dict)
    assert hashed["digest"] == pushed["digest"]
    assert not (tmp_path / "no-home-here").exists()


def test_ls_show_pull_alias_usage(home: Path, make_model: MakeModel, tmp_path: Path) -> None:
    root = make_model({"w.bin": b"abc"})
    pushed = cli_json(home, "push", str(root), "--name", "alice/m", "--tag", "demo")
    assert isinstance(pushed, dict)
    listed = cli_json(home, "ls", "--name", "alice/*")
    assert isinstance(listed, list) and [m["name"] for m in listed] == ["alice/m"]
    assert cli_json(home, "ls", "--tag", "other") == []
    shown = cli_json(home, "show", pushed["digest"][:16])
    assert isinstance(shown, dict) and shown["version"] == 1 and shown["tags"] == ["demo"]
    aliased = cli_json(home, "alias", "alice/m@1", "prod")
    assert isinstance(aliased, dict) and aliased["version"] == 1
    pulled = cli_json(home, "pull", "alice/m@prod", str(tmp_path / "out"))
    assert isinstance(pulled, dict) and (tmp_path / "out" / "w.bin").read_bytes() == b"abc"
    usage = cli_json(home, "usage", "alice/m")
    assert isinstance(usage, dict) and usage["counts"] == {"push": 1, "alias": 1, "download": 1}
    code, out, _ = cli(home, "ls")
    assert code == 0 and "alice/m" in out


@pytest.mark.parametrize(
    ("args", "message", "exit_code"),
    [
        (["push", "{missing}", "--name", "alice/m"], "no such file or directory", 2),
        (["push", "{model}", "--name", "not-a-name"], "is not OWNER/NAME", 2),
        (["push", "{model}", "--name", "alice/m", "--param", "novalue"], "is not KEY=VALUE", 2),
        (
            ["push", "{model}", "--name", "alice/m", "--parent", "alice/ghost"],
            "no model named alice/ghost",
            3,
        ),
        (["push", "{model}", "--name", "alice/m", "--dataset", "sha256:zz"], "not a SHA-256 digest", 2),
        (["show", "alice/ghost"], "no model named alice/ghost", 3),
        (["pull", "alice/ghost", "{out}"], "no model named alice/ghost", 3),
        (["usage", "sha256:beef"], "no version has a digest starting with sha256:beef", 3),
        (["alias", "alice/ghost@1", "prod"], "no model named alice/ghost", 3),
    ],
)
def test_bad_input_gives_one_line_and_writes_nothing(
    home: Path, make_model: MakeModel, tmp_path: Path, args: list[str], message: str, exit_code: int
) -> None:
    paths = {"missing": str(tmp_path / "missing"), "model": str(make_model()), "out": str(tmp_path / "out")}
    before = state(home)
    code, _, err = cli(home, *[a.format(**paths) for a in args])
    assert code == exit_code
    assert message in err and err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert state(home) == before
    assert not (tmp_path / "out").exists()


def test_commands_without_home_say_run_init(tmp_path: Path) -> None:
    code, _, err = cli(tmp_path / "nowhere", "ls")
    assert code == 3 and "run `aiprov init`" in err
    assert not (tmp_path / "nowhere").exists()


def test_database_from_a_newer_schema_is_refused_untouched(home: Path, make_model: MakeModel) -> None:
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    before = state(home)
    for args in (["push", str(make_model()), "--name", "alice/m"], ["ls"], ["init"]):
        code, _, err = cli(home, *args)
        assert code == 8, args
        assert "newer than this aiprov knows" in err and len(err.strip().splitlines()) == 1
    assert state(home) == before


def test_real_process_prints_no_traceback(home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aiprov", "--home", str(home), "show", "bad ref"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr


def test_help_lists_every_command() -> None:
    help_text = run("--help").out
    for command in ("init", "push", "hash", "ls", "show", "pull", "alias", "usage", "quickstart"):
        assert command in help_text


@pytest.mark.slow
def test_quickstart_registers_the_demo_and_dedups_on_rerun(tmp_path: Path) -> None:
    h = tmp_path / "qs"
    first = cli_json(h, "quickstart")
    second = cli_json(h, "quickstart")
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["push"]["name"] == "demo/iris-classifier" and not first["push"]["deduplicated"]
    assert second["push"]["deduplicated"] and second["push"]["digest"] == first["push"]["digest"]
    assert [m["name"] for m in second["models"]] == ["demo/iris-classifier"]


def test_invalid_configuration_is_one_line_not_a_traceback(home: Path) -> None:
    result = cli(home, "ls", env={"AIPROV_WORKERS": "0"})
    assert result.code == 2
    assert result.error().startswith("error: invalid configuration: AIPROV_WORKERS")


def test_show_escapes_control_characters_in_stored_text(home: Path, make_model: MakeModel) -> None:
    """Metadata is free JSON and old versions may hold any path: `show` must not let them act on the terminal."""
    from aiprov.config import Container, Settings
    from aiprov.services.registry import PushRequest

    assert cli(home, "init")[0] == 0
    model = make_model({"w.bin": b"w"})
    container = Container(Settings(home=home, actor="alice"))
    try:
        request = PushRequest(name="alice/m", metadata={"k": "red\x1b[31m\x07", "e\x1bkey": "\u202eexe"})
        container.registry.push(model, request)
    finally:
        container.close()
    code, out, _ = cli(home, "show", "alice/m")
    assert code == 0 and "k=red\\x1b[31m\\x07" in out and "e\\x1bkey=\\u202eexe" in out
    assert not any(c in out for c in "\x1b\x07\u202e"), ascii(out)
