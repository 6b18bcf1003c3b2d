"""C2SP tlog-checkpoint bodies: the published vector, round trips, and strict rejection."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiprov.core.checkpoint import Checkpoint
from aiprov.core.merkle import leaf_hash
from aiprov.errors import InvalidInput

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent.parent / "vectors" / "tlog.json").read_text())
BODY = VECTORS["checkpoint_body"]
ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()
URLSAFE_B64 = base64.urlsafe_b64encode(b"\xff" * 32).decode()


def test_body_matches_published_vector() -> None:
    checkpoint = Checkpoint(BODY["origin"], BODY["size"], leaf_hash(BODY["root_leaf_input"].encode()))
    assert checkpoint.to_body() == BODY["body"]
    assert Checkpoint.parse(BODY["body"]) == checkpoint


def test_extension_lines_round_trip() -> None:
    checkpoint = Checkpoint("example.com/log", 7, ROOT, ("ext one", "— two"))
    assert checkpoint.to_body() == f"example.com/log\n7\n{ROOT_B64}\next one\n— two\n"
    assert Checkpoint.parse(checkpoint.to_body()) == checkpoint


line = st.text(st.characters(exclude_categories=["Cs"], min_codepoint=0x20), min_size=1)


@given(line, st.integers(min_value=0, max_value=2**64 - 1), st.binary(min_size=32, max_size=32), st.lists(line))
def test_any_checkpoint_round_trips_through_its_body(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(ext))
    assert Checkpoint.parse(checkpoint.to_body()) == checkpoint


def test_empty_tree_size_is_zero() -> None:
    assert Checkpoint.parse(f"log\n0\n{ROOT_B64}\n").size == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f"log\n7\n{ROOT_B64}", "end with a newline"),
        ("log\n7\n", "fewer than"),
        (f"\n7\n{ROOT_B64}\n", "origin must not be empty"),
        (f"log\n007\n{ROOT_B64}\n", "leading zeros"),
        (f"log\n-1\n{ROOT_B64}\n", "not a decimal"),
        (f"log\n+7\n{ROOT_B64}\n", "not a decimal"),
        (f"log\n 7\n{ROOT_B64}\n", "not a decimal"),
        (f"log\n7 \n{ROOT_B64}\n", "not a decimal"),
        (f"log\n\n{ROOT_B64}\n", "not a decimal"),
        (f"log\n\u0667\n{ROOT_B64}\n", "not a decimal"),  # an Arabic-Indic seven
        (f"log\n{2**64}\n{ROOT_B64}\n", "not a uint64"),
        (f"log\n7\n{ROOT_B64.rstrip('=')}\n", "not valid base64"),
        (f"log\n7\n{ROOT_B64[:-2]}B=\n", "not canonical base64"),
        (f"log\n7\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"log\n7\n{URLSAFE_B64}\n", "not valid base64"),
        (f"log\n7\n{ROOT_B64}\n\n", "extension line must not be empty"),
        (f"log\n7\n{ROOT_B64}\next\n\nmore\n", "extension line must not be empty"),
        (f"log\tname\n7\n{ROOT_B64}\n", "control character"),
    ],
)
def test_malformed_bodies_are_rejected(body: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        Checkpoint.parse(body)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"origin": "a\nb"}, "control character"),
        ({"size": -1}, "not a uint64"),
        ({"root_hash": b"x"}, "1 bytes"),
        ({"extensions": ("",)}, "must not be empty"),
        ({"extensions": ("two\nlines",)}, "control character"),
    ],
)
def test_invalid_checkpoints_cannot_be_built(kwargs: dict[str, Any], reason: str) -> None:
    fields: dict[str, Any] = {"origin": "log", "size": 1, "root_hash": ROOT, **kwargs}
    with pytest.raises(InvalidInput, match=reason):
        Checkpoint(**fields)
