"""C2SP signed notes: published vectors, then the spec's rules for keys, parsing and opening."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiprov.core.checkpoint import Checkpoint
from aiprov.core.note import (
    MAX_SIGNATURES,
    Note,
    Signature,
    Signer,
    Verifier,
    key_id,
    open_note,
    sign_note,
)
from aiprov.errors import InvalidInput, VerificationError

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent.parent / "vectors" / "tlog.json").read_text())
NOTES = VECTORS["signed_notes"]
CASES = {c["id"]: c for c in NOTES["cases"]}
PETER_SKEY = CASES["go-peter"]["skey"]
PETER = Verifier.parse(CASES["go-peter"]["vkey"])
ENOCH = Verifier.parse(CASES["go-enoch"]["vkey"])
TEXT = CASES["go-peter"]["expect_text"]


def _signer(name: str) -> Signer:
    # Deterministic keys so failures reproduce.
    return Signer(name, name.encode().ljust(32, b"\0")[:32])


# --- published vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", NOTES["cases"], ids=lambda c: c["id"])
def test_open_agrees_with_vector(case: dict[str, Any]) -> None:
    verifier = Verifier.parse(case["vkey"])
    if not case["expect_valid"]:
        with pytest.raises(VerificationError):
            open_note(case["note"], [verifier])
        return
    note = open_note(case["note"].encode(), [verifier])
    assert len(note.signatures) == case.get("expect_verified_sigs", 1)
    assert all((s.name, s.key_id) == (verifier.name, verifier.key_id) for s in note.signatures)
    if "expect_text" in case:
        assert note.text == case["expect_text"]
    if "checkpoint" in case:
        checkpoint = Checkpoint.parse(note.text)
        want = case["checkpoint"]
        assert (checkpoint.origin, checkpoint.size, checkpoint.root_hash.hex()) == (
            want["origin"],
            want["size"],
            want["root_hex"],
        )


@pytest.mark.parametrize("case", NOTES["cases"], ids=lambda c: c["id"])
def test_verifier_key_round_trips_and_its_id_is_the_spec_hash(case: dict[str, Any]) -> None:
    verifier = Verifier.parse(case["vkey"])
    assert str(verifier) == case["vkey"]
    assert f"{key_id(verifier.name, verifier.public_key):08x}" == case["vkey"].split("+")[1]


@pytest.mark.parametrize("vkey", NOTES["bad_vkeys"]["must_reject"])
def test_bad_verifier_keys_from_vectors_are_rejected(vkey: str) -> None:
    with pytest.raises(InvalidInput):
        Verifier.parse(vkey)


def test_signer_key_derives_the_published_verifier_and_round_trips() -> None:
    signer = Signer.parse(PETER_SKEY)
    assert signer.verifier == PETER
    assert str(signer.verifier) == CASES["go-peter"]["vkey"]
    assert signer.to_skey() == PETER_SKEY


def test_signing_reproduces_the_published_note_byte_for_byte() -> None:
    case = CASES["go-peter"]
    assert case["expect_deterministic_signature"]
    assert sign_note(case["expect_text"], [Signer.parse(PETER_SKEY)]) == case["note"]


# --- keys ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "claims key ID"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "invalid note key ID"),
        ("PeterNeumann+c74f20a3", "malformed"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("PeterNeumann+c74f20a3+", "algorithm none"),
        ("PeterNeumann+c74f20a3+AhpjMhdDMnk=", "algorithm 0x02"),
    ],
)
def test_malformed_verifier_keys_are_rejected_with_a_reason(vkey: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Verifier.parse(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        PETER_SKEY.replace("PRIVATE+KEY", "PRIVATE+KEYS"),
        PETER_SKEY.replace("c74f20a3", "c74f20a4"),
        PETER_SKEY[:-4],
        PETER_SKEY.replace("+AY", "+Ag"),
    ],
)
def test_malformed_signer_keys_are_rejected_without_quoting_the_secret(skey: str) -> None:
    secret = PETER_SKEY.rsplit("+", 1)[1]
    with pytest.raises(InvalidInput) as info:
        Signer.parse(skey)
    assert secret not in info.value.diagnostics()
    assert secret[:-4] not in info.value.diagnostics()


def test_signer_repr_does_not_reveal_the_private_key() -> None:
    signer = Signer.parse(PETER_SKEY)
    assert PETER_SKEY.rsplit("+", 1)[1] not in repr(signer)


def test_generated_signer_signs_notes_its_verifier_opens() -> None:
    signer = Signer.generate("log.example/test")
    again = Signer.parse(signer.to_skey())
    note = open_note(sign_note("hello\n", [again]), [Verifier.parse(str(signer.verifier))])
    assert note.text == "hello\n"


# --- opening: the spec's rules -------------------------------------------------------------------------------


def test_unknown_signatures_are_ignored_and_dropped() -> None:
    other = _signer("other.example")
    message = sign_note(TEXT, [other, Signer.parse(PETER_SKEY)])
    note = open_note(message, [PETER])
    assert [s.name for s in note.signatures] == ["PeterNeumann"]


@pytest.mark.parametrize("impostor_name", ["PeterNeumann", "someone-else"])
def test_signature_matching_only_name_or_only_id_of_a_known_key_is_ignored(impostor_name: str) -> None:
    impostor = _signer(impostor_name)
    sig = impostor.sign(TEXT.encode())
    # Same name with another key ID, or (forced) another name with the known key ID: neither is the known key.
    forged_id = PETER.key_id if impostor_name != "PeterNeumann" else impostor.key_id
    message = Note(TEXT, (Signature(impostor_name, forged_id, sig),)).format()
    with pytest.raises(VerificationError, match="not signed by any trusted key"):
        open_note(message, [PETER])


def test_a_failing_signature_from_a_known_key_rejects_the_whole_note() -> None:
    good = Note.parse(sign_note(TEXT, [Signer.parse(PETER_SKEY)])).signatures[0]
    enoch_bad = Signature(ENOCH.name, ENOCH.key_id, bytes(64))
    message = Note(TEXT, (good, enoch_bad)).format()
    with pytest.raises(VerificationError, match="EnochRoot"):
        open_note(message, [PETER, ENOCH])


def test_repeated_signatures_by_one_key_count_once() -> None:
    message = sign_note(TEXT, [Signer.parse(PETER_SKEY), Signer.parse(PETER_SKEY)])
    assert len(Note.parse(message).signatures) == 2
    assert len(open_note(message, [PETER]).signatures) == 1


def test_note_without_trusted_verifiers_is_rejected() -> None:
    with pytest.raises(VerificationError, match=r"trusted: none"):
        open_note(CASES["go-peter"]["note"], [])


def test_text_may_contain_blank_lines() -> None:
    text = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    signer = _signer("quasimodo.example/salvatore")
    assert open_note(sign_note(text, [signer]), [signer.verifier]).text == text


def test_note_accepts_the_maximum_number_of_signatures_and_no_more() -> None:
    peter = Signer.parse(PETER_SKEY)
    assert len(open_note(sign_note(TEXT, [peter] * MAX_SIGNATURES), [PETER]).signatures) == 1
    message = sign_note(TEXT, [peter] * MAX_SIGNATURES)
    with pytest.raises(VerificationError, match=f"more than {MAX_SIGNATURES} signatures"):
        open_note(message + Note.parse(message).signatures[0].line(), [PETER])


VALID = CASES["go-peter"]["note"]
SIG_LINE = VALID.split("\n\n")[1]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (VALID.replace("\n\n", "\n"), "no blank line"),
        (VALID[:-1], "ending in a newline"),
        (TEXT + "\n", "ending in a newline"),
        (VALID.replace("cryptography", "crypto\tgraphy"), "control character"),
        (VALID.replace("cryptography", "crypto\rgraphy"), "control character"),
        (VALID.replace("\u2014 ", "- "), "malformed note signature line"),
        (VALID.replace("\u2014 ", "\u2014"), "malformed note signature line"),
        (VALID.replace("PeterNeumann ", "Peter+Neumann "), "malformed note signature line"),
        (VALID.replace("PeterNeumann ", " "), "malformed note signature line"),
        (VALID.replace("JnAM=", "JnAM"), "not valid base64"),
        (VALID.replace("x08go", "x08g!"), "not valid base64"),
        (
            TEXT + "\n\u2014 PeterNeumann " + base64.b64encode(b"\xc7\x4f\x20\xa3").decode() + "\n",
            "malformed",
        ),
        (VALID + "\n", "ending in a newline"),
        (VALID + SIG_LINE.rstrip("\n") + " trailing\n", "not valid base64"),
    ],
)
def test_malformed_notes_are_rejected(message: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        Note.parse(message)
    with pytest.raises(VerificationError, match=reason):
        open_note(message, [PETER])


def test_note_that_is_not_utf8_is_rejected() -> None:
    with pytest.raises(VerificationError, match="UTF-8"):
        open_note(VALID.encode().replace(b"cryptography", b"crypt\xffgraphy"), [PETER])


@pytest.mark.parametrize("text", ["", "no final newline", "tab\there\n"])
def test_signing_refuses_text_the_format_cannot_carry(text: str) -> None:
    with pytest.raises(InvalidInput):
        sign_note(text, [Signer.parse(PETER_SKEY)])


def test_signing_needs_a_signer() -> None:
    with pytest.raises(InvalidInput, match="at least one signature"):
        sign_note(TEXT, [])


def test_parse_then_format_reproduces_the_note() -> None:
    message = CASES["go-two-sigs-one-known"]["note"]
    assert Note.parse(message).format() == message


note_text = st.lists(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n", min_codepoint=0x20)),
    min_size=1,
    max_size=5,
).map(lambda lines: "".join(line + "\n" for line in lines))


@settings(max_examples=100, deadline=None)
@given(note_text)
def test_any_signed_text_opens_to_itself(text: str) -> None:
    signer = _signer("log.example")
    assert open_note(sign_note(text, [signer]), [signer.verifier]).text == text


@settings(max_examples=100, deadline=None)
@given(note_text, st.data())
def test_any_change_to_the_signed_text_is_detected(text: str, data: st.DataObject) -> None:
    signer = _signer("log.example")
    message = sign_note(text, [signer])
    i = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    replacement = data.draw(st.sampled_from(["a", "b", "\n", "\u00e9"]).filter(lambda c: c != text[i]))
    tampered = message[:i] + replacement + message[i + 1 :]
    with pytest.raises(VerificationError):
        open_note(tampered, [signer.verifier])
