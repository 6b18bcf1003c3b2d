"""The input-validation layer's pure rules: references and versions, JSON documents, free text, file paths.

Each rule is tested in both directions (honest input passes, bad input is refused with InvalidInput) and at its
edges; Hypothesis checks that no input makes a rule raise anything but InvalidInput.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiprov.core.jsonvalues import MAX_DEPTH, MAX_SAFE_INTEGER, check_json, loads
from aiprov.core.manifest import MAX_COMPONENT_BYTES, check_file_path, check_model_paths
from aiprov.core.names import MAX_REF_LENGTH, MAX_VERSION, Ref, parse_version_number
from aiprov.core.text import check_text, printable
from aiprov.errors import InvalidInput

# references and versions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("selector", "number"), [("1", 1), ("42", 42), ("007", 7), (str(MAX_VERSION), MAX_VERSION)])
def test_ascii_version_numbers_name_their_version(selector: str, number: int) -> None:
    assert Ref.parse(f"alice/iris@{selector}").number == number


@pytest.mark.parametrize(
    "selector",
    [
        "0",
        "00",
        str(MAX_VERSION + 1),
        "9" * 23,
        "9" * 5000,
        "²",
        "\u0661",
        "\u0661\u0662",
        "1²",
        "Ⅳ",
        "½",
        "\U0001d7cf",
    ],
)
def test_versions_that_are_not_ascii_numbers_in_range_are_refused(selector: str) -> None:
    with pytest.raises(InvalidInput) as e:
        Ref.parse(f"alice/iris@{selector}")
    assert len(e.value.diagnostics()) < 300  # a 5,000-digit version is not echoed back whole


@pytest.mark.parametrize("alias", ["prod", "v2", "release-1.0", "a1_2"])
def test_aliases_with_digits_are_still_aliases(alias: str) -> None:
    assert Ref.parse(f"alice/iris@{alias}").alias == alias
    assert parse_version_number(alias) is None


def test_a_reference_longer_than_the_limit_is_refused() -> None:
    Ref.parse("a" * 64 + "/" + "b" * 128 + "@" + "c" * 64)  # the longest valid one is within the limit
    with pytest.raises(InvalidInput):
        Ref.parse("a/" + "b" * MAX_REF_LENGTH)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"[a-z]{1,8}/[a-z]{1,8}@.{0,30}", fullmatch=True))
def test_any_reference_text_parses_or_is_invalid_input(text: str) -> None:
    try:
        ref = Ref.parse(text)
    except InvalidInput:
        return
    if ref.number is not None:
        assert 1 <= ref.number <= MAX_VERSION
        assert text.strip().rpartition("@")[2].isascii()


# JSON documents ------------------------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "document",
    [
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        '{"a": 1e400}',
        '{"a": -1E+999}',
        f'{{"a": {MAX_SAFE_INTEGER + 1}}}',
        f'{{"a": -{MAX_SAFE_INTEGER + 1}}}',
        '{"a": ' + "9" * 5000 + "}",
        '{"a": "\\ud800"}',
        '{"\\udc00": 1}',
        '{"a": "\\ud83d"}',  # the first half of a pair, alone
        _nested(MAX_DEPTH + 1),
        _nested(900),
        _nested(100_000),
        '{"a": 1',
        "",
    ],
)
def test_documents_json_cannot_carry_exactly_are_refused(document: str) -> None:
    with pytest.raises(InvalidInput):
        loads(document.encode())


def test_bytes_that_are_not_utf8_are_refused() -> None:
    for data in (b'{"a": "\xff"}', b'{"a": "\xed\xa0\x80"}', '{"a": 1}'.encode("utf-16")):
        with pytest.raises(InvalidInput):
            loads(data)


def test_honest_documents_parse_to_their_value() -> None:
    value = {
        "accuracy": 0.97,
        "tiny": 5e-324,
        "huge": 1.7976931348623157e308,
        "edges": [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0, -0.0],
        "text": "Grüße, 日本語, emoji \U0001f600, tab\tnewline\n",
        "nested": json.loads(_nested(MAX_DEPTH - 1)),
        "null": None,
        "flag": True,
    }
    assert loads(json.dumps(value).encode()) == value
    assert loads('"\\ud83d\\ude00"') == "\U0001f600"  # a surrogate pair escape is one character


_JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(_JSON_LIKE | st.integers(min_value=MAX_DEPTH - 2, max_value=MAX_DEPTH + 2).map(lambda d: json.loads(_nested(d))))
def test_check_json_refuses_exactly_the_values_outside_the_rules(value: object) -> None:
    def allowed(v: object, depth: int = 1) -> bool:
        if isinstance(v, float):
            return v == v and v not in (float("inf"), float("-inf"))
        if isinstance(v, bool) or v is None:
            return True
        if isinstance(v, int):
            return abs(v) <= MAX_SAFE_INTEGER
        if isinstance(v, str):
            return not any(0xD800 <= ord(c) <= 0xDFFF for c in v)
        items = list(v.items()) if isinstance(v, dict) else [(None, x) for x in v]  # type: ignore[attr-defined]
        return depth <= MAX_DEPTH and all((k is None or allowed(k)) and allowed(x, depth + 1) for k, x in items)

    if allowed(value):
        check_json(value, what="v")
    else:
        with pytest.raises(InvalidInput):
            check_json(value, what="v")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_or_are_invalid_input(data: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        loads(data)


# free text -----------------------------------------------------------------------------------------------------


def test_descriptions_may_span_lines_but_hold_no_terminal_controls() -> None:
    assert check_text("Iris classifier.\r\n\tTrained on 150 rows; Grüße 日本", what="d", multiline=True)
    for bad in ("\x1b[2J", "bell\x07", "\x7f", "\x9b31m", "nul\x00", "\ud800"):
        with pytest.raises(InvalidInput):
            check_text(bad, what="d", multiline=True)
    with pytest.raises(InvalidInput):
        check_text("two\nlines", what="license")  # one-line fields hold no line break


def test_text_over_its_limit_is_refused_at_the_edge() -> None:
    assert check_text("x" * 100, what="t", max_chars=100)
    with pytest.raises(InvalidInput):
        check_text("x" * 101, what="t", max_chars=100)


# file paths ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "model.safetensors",
        "weights/layer 1.bin",
        "données/modèle.onnx",
        "日本語/モデル.pkl",
        "\u0646\u0645\u0648\u0630\u062c.onnx",
        "\u0641\u0627\u0631\u0633\u06cc\u200c\u0646\u0627\u0645.bin",  # ZWNJ is part of Persian spelling
        "👩\u200d💻/emoji.json",  # ZWJ sequence
        "a.b.c/.hidden/x..y",
        "e\u0301.bin",  # NFD, as macOS writes it, on its own
        "a" * MAX_COMPONENT_BYTES,
        "é" * (MAX_COMPONENT_BYTES // 2) + "e",  # 255 bytes, of two-byte characters
        "/".join(["d" * 255] * 15 + ["d" * 254, "x"]),  # MAX_PATH_BYTES exactly
    ],
)
def test_honest_file_paths_pass(path: str) -> None:
    assert check_file_path(path) == path
    check_model_paths([path])


@pytest.mark.parametrize(
    "path",
    [
        "a\nb.json",
        "a\rb",
        "tab\there",
        "esc\x1b[31m.bin",
        "del\x7f",
        "c1\x85",
        "csi\x9b",
        "bidi\u202eexe.txt",
        "isolate\u2066x",
        "lone\udc80.bin",  # an undecodable byte of a Linux file name, as os.listdir gives it
        "a" * (MAX_COMPONENT_BYTES + 1),
        "é" * (MAX_COMPONENT_BYTES // 2 + 1),  # 256 bytes, 128 characters
        "/".join(["d" * 255] * 16 + ["x"]),  # one byte over MAX_PATH_BYTES
        "../escape",
        "/absolute",
        "a//b",
        "back\\slash",
    ],
)
def test_file_paths_that_a_terminal_or_file_system_would_mangle_are_refused(path: str) -> None:
    with pytest.raises(InvalidInput) as e:
        check_file_path(path)
    assert "\n" not in e.value.diagnostics() and "\x1b" not in e.value.diagnostics()


@pytest.mark.parametrize(
    "paths",
    [
        ["Model.bin", "model.bin"],
        ["README", "readme"],
        ["\u00e9.bin", "e\u0301.bin"],  # NFC and NFD spellings of é
        ["Weights/a.bin", "weights/b.bin"],  # two directories that are one on macOS
        ["straße.txt", "STRASSE.txt"],  # full case folding
        ["x/Ä", "x/a\u0308"],
    ],
)
def test_paths_one_file_system_would_merge_are_refused(paths: list[str]) -> None:
    with pytest.raises(InvalidInput, match="differ only by case or Unicode normalisation"):
        check_model_paths(paths)


def test_distinct_paths_in_one_directory_pass() -> None:
    check_model_paths(["weights/a.bin", "weights/b.bin", "config.json", "Config2.json", "é/1", "e/1"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4))
def test_any_paths_pass_or_are_invalid_input(paths: list[str]) -> None:
    try:
        check_model_paths(paths)
    except InvalidInput:
        return
    folded = [unicodedata.normalize("NFC", unicodedata.normalize("NFC", p).casefold()) for p in paths]
    assert len(set(folded)) == len(set(paths))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(text=st.text())
def test_printable_text_holds_no_control_bidi_or_surrogate_and_keeps_the_rest(text: str) -> None:
    shown = printable(text)
    assert not any(
        unicodedata.category(c) in ("Cc", "Cs") or "\u202a" <= c <= "\u202e" or "\u2066" <= c <= "\u2069" for c in shown
    )
    if all(c.isprintable() for c in text):
        assert shown == text


def test_printable_escapes_what_a_terminal_acts_on() -> None:
    assert printable("red\x1b[31m\x07\u202etxt.exe\ud800") == "red\\x1b[31m\\x07\\u202etxt.exe\\ud800"
    assert printable("line one\r\n\tline two\x1b", multiline=True) == "line one\r\n\tline two\\x1b"
