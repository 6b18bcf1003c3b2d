"""The CLI's reference parsing under fuzzing: every reference is a result or a one-line error with the documented
exit code (2 invalid input, 3 not found), never a traceback, and no control character reaches the terminal raw.

Through every command that takes a reference (Typer's CliRunner), and a sample through the real entry point in a
subprocess. A reference never starts with `-`; one that does must follow `--` (docs/cli.md, "References").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.cli import cli

DIGITS = st.characters(categories=["Nd", "No", "Nl"])
"""Decimal digits of every script, superscripts, fractions, Roman numerals: `int()` takes some, `isdigit()` more."""

SELECTORS = (
    st.text(DIGITS, min_size=1, max_size=6)
    | st.integers(min_value=0, max_value=10**30).map(str)
    | st.integers(min_value=4290, max_value=4400).map(lambda n: "9" * n)
    | st.text(st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp"]), min_size=1, max_size=4)
    | st.text(max_size=20)
)
REFERENCES = st.builds(lambda s: f"alice/m@{s}", SELECTORS) | st.text(max_size=40) | st.just("sha256:" + "0" * 64)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("refs") / "home"
    assert cli(home, "init")[0] == 0
    model = home.parent / "w.bin"
    model.write_bytes(b"weights")
    assert cli(home, "push", str(model), "--name", "alice/m")[0] == 0
    return home


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(ref=REFERENCES)
def test_any_reference_is_a_result_or_a_one_line_error(home: Path, ref: str) -> None:
    code, out, err = cli(home, "show", "--json", "--", ref)  # `--`: a reference may start with a dash
    assert "Traceback" not in out + err
    if code == 0:
        assert out.startswith("{")
        return
    assert code in (2, 3), (code, err)
    assert err.count("\n") == 1, err  # under --json, the error is one JSON problem object on one line
    problem = json.loads(err)
    assert problem["exit_code"] == code and problem["code"] in ("invalid_input", "not_found"), problem
    assert not any(c in err for c in "\x1b\r\x07\x9b\u202e"), ascii(err)


@pytest.mark.parametrize("ref", ["alice/m@99999999999999999999999", "alice/m@²", "alice/m@\u0661", "alice/m@0"])
def test_numbers_that_name_no_version_are_exit_2(home: Path, ref: str) -> None:
    code, _, err = cli(home, "show", ref)
    assert code == 2 and err.startswith("error: ") and "version" in err


def test_an_ascii_number_names_its_version(home: Path) -> None:
    code, out, _ = cli(home, "show", "alice/m@1")
    assert code == 0 and "alice/m" in out


# every command that takes a reference -----------------------------------------------------------------------------

COMMANDS: list[tuple[tuple[str, ...], tuple[str, ...], frozenset[int]]] = [
    (("show",), (), frozenset({0})),
    (("verify",), (), frozenset({0, 6})),
    (("usage",), (), frozenset({0})),
    (("alias",), ("prod",), frozenset({0})),
    (("pull", "--force"), ("PULLED",), frozenset({0})),
    (("ipfs", "export"), ("OUT.car",), frozenset({0})),
    (("eval", "--benchmark", "iris"), (), frozenset({0, 9})),
    (("sign", "--key", "KEY"), (), frozenset({0})),
    (("chain", "register"), (), frozenset({0, 8})),
]
"""(command and options, arguments after the reference, exit codes besides 2 and 3 that a valid reference may
give: a verification that fails, a model that cannot run, no chain configured)."""


def _invoke(home: Path, command: tuple[str, ...], ref: str, after: tuple[str, ...]) -> tuple[int, str, str]:
    where = {"PULLED": str(home.parent / "pulled"), "OUT.car": str(home.parent / "out.car"), "KEY": "/no/key.pem"}
    flags = tuple(where.get(a, a) for a in command)
    return cli(home, *flags, "--", ref, *(where.get(a, a) for a in after))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(ref=REFERENCES, which=st.integers(min_value=0, max_value=len(COMMANDS) - 1))
def test_every_command_taking_a_reference_answers_or_fails_in_one_line(home: Path, ref: str, which: int) -> None:
    command, after, ok = COMMANDS[which]
    code, out, err = _invoke(home, command, ref, after)
    assert "Traceback" not in out + err
    if code in ok:
        return
    assert code in (2, 3), (command, ascii(ref)[:80], code, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not any(c in err for c in "\x00\x1b\r\x07\x9b\u202e"), ascii(err)


HUGE_AND_UNICODE = st.sampled_from(["9" * 25, "9" * 5000, "²", "\u0661", "\uff11", "0", "2147483648", "1\u0661"])


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(selector=HUGE_AND_UNICODE, which=st.integers(min_value=0, max_value=len(COMMANDS) - 1))
def test_numbers_that_name_no_version_are_exit_2_in_every_command(home: Path, selector: str, which: int) -> None:
    command, after, _ = COMMANDS[which]
    code, _, err = _invoke(home, command, f"alice/m@{selector}", after)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (command, code, err)


# a leading dash -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["-x", "--json", "-1", "-alice/m", "--=", "-\x1b[2J"])
def test_a_reference_starting_with_a_dash_is_an_option_unless_after_double_dash(home: Path, ref: str) -> None:
    """No reference starts with `-` (owners start with a letter or digit), so Click reads one as an option: an
    unknown option is a usage error (exit 2); after `--` it is read as a reference and refused in one line."""
    code, out, err = cli(home, "show", ref)
    assert code in (0, 2) and "Traceback" not in out + err  # `--json` alone is the option: a missing REF
    code, out, err = cli(home, "show", "--", ref)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in out


# the real entry point, with what a shell can pass ---------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        b"alice/m@" + b"9" * 5000,
        "alice/m@²".encode(),
        b"alice/m@\xff",  # not UTF-8: Python passes it as a lone surrogate (surrogateescape)
        b"alice/\xed\xa0\x80",
        b"alice/m\x1b[2J@1",
        b"alice/m@1\n2",
        b"a" * 100_000,
    ],
    ids=["5000-digits", "superscript", "bad-utf8", "encoded-surrogate", "esc", "nl", "100k"],
)
def test_the_installed_command_fails_in_one_line_for_any_argv(home: Path, ref: bytes) -> None:
    """A sample through `python -m aiprov` (the CliRunner tests cover the rest): argv as bytes, as a shell passes it."""
    env = {**os.environ, "AIPROV_ACTOR": "alice", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "aiprov", "--home", str(home), "show", "--", ref],
        env=env,
        capture_output=True,
        timeout=120,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not any(c in done.stderr for c in b"\x00\x1b\r\x07"), done.stderr
