"""The README's set-up commands are the ones CI runs, and its Use section runs as written, in order."""

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, re.S)


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("aiprov quickstart")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def use_blocks() -> list[str]:
    """Every bash block of the README's Use section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Use\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, re.S)


def test_the_use_section_has_the_local_the_server_and_the_chain_blocks() -> None:
    blocks = use_blocks()
    assert len(blocks) == 3
    assert "aiprov serve" in blocks[1]
    assert "anvil" in blocks[2] and "aiprov chain deploy" in blocks[2] and "--chain" in blocks[2]


@pytest.mark.slow
def test_the_use_section_runs_in_order_as_written_in_a_fresh_home(tmp_path: Path) -> None:
    # The one change: the README's ports, which another process may hold on a CI machine.
    script = "\n".join(use_blocks()).replace("8000", str(free_port())).replace("8545", str(free_port()))
    (tmp_path / "use.sh").write_text(script + "\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPROV_")}
    env.update(
        HOME=str(tmp_path / "home"),
        # anvil as `npm install -g @foundry-rs/anvil` would put it on the PATH: the one the lockfile installs.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), str(ROOT / "node_modules" / ".bin"), env["PATH"]]),
        PYTHONPATH=str(ROOT / "src"),
        COLUMNS="80",
    )
    process = subprocess.Popen(
        ["bash", "-euxo", "pipefail", str(tmp_path / "use.sh")],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the server it starts in the background is in its group, killed below
    )
    try:
        out, _ = process.communicate(timeout=900)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, out[-6000:]
    assert "Traceback" not in out
    assert "alice/iris" in out and "bob/iris" in out
    assert "PASS  chain.anchor" in out and "anchored up to size" in out
