"""The fast path of `canonical_json` (orjson, sorted keys) gives exactly the reference RFC 8785 encoder's bytes."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from aiprov.core.canonical import _plain, canonical_json
from aiprov.errors import InvalidInput

scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text()
documents = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(documents)
def test_any_document_encodes_as_the_reference_does(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(st.recursive(scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c, max_size=5)))
def test_documents_without_floats_take_the_fast_path_when_keys_are_ascii(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_every_escaped_and_unescaped_character_class_is_encoded_alike() -> None:
    points = [*range(0x100), 0x2028, 0x2029, 0xD7FF, 0xE000, 0xFEFF, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]
    for cp in points:
        value = {"k": chr(cp), "list": [chr(cp) * 3, f"a{chr(cp)}b"]}
        assert _plain(value)
        assert canonical_json(value) == rfc8785.dumps(value), hex(cp)


def test_what_the_fast_path_leaves_to_the_reference_encoder() -> None:
    assert not _plain({"é": 1})  # a non-ASCII key: orjson sorts by UTF-8 bytes, RFC 8785 by UTF-16 units
    assert not _plain({"x": 1.5}) and not _plain([2**53]) and not _plain((1, 2))
    assert canonical_json({"\U0001f600": 1, "\uffff": 2}) == rfc8785.dumps({"\U0001f600": 1, "\uffff": 2})
    with pytest.raises(InvalidInput):  # a lone surrogate: neither encoder takes it
        canonical_json({"s": "\ud800"})
    assert canonical_json({"b": 1, "a": [True, None, -7]}) == b'{"a":[true,null,-7],"b":1}'
