"""The CLI's reference parsing under fuzzing: every reference is a result or a one-line error with the documented
exit code (2 invalid input, 3 not found), never a traceback, and no control character reaches the terminal raw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clitools import cli

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
