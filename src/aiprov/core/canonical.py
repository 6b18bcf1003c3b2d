"""The one canonical JSON encoding (RFC 8785, JSON Canonicalization Scheme).

Every object that is hashed, signed or logged is encoded by `canonical_json`, so two implementations that agree on
the value agree on the bytes. The `rfc8785` package (Trail of Bits, used by sigstore-python) is the reference
encoder; documents orjson provably encodes identically (no floats, ASCII keys) take that faster path.
"""

from __future__ import annotations

from typing import Any

import rfc8785

from aiprov.errors import InvalidInput

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is optional: rfc8785 alone gives the same bytes, slower
    orjson = None  # type: ignore[assignment]

_SAFE_INT = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """Encode `value` as RFC 8785 canonical JSON (UTF-8 bytes).

    Raises InvalidInput for values JSON cannot carry exactly (NaN, infinities, integers beyond 2**53, non-string
    keys, unknown types).
    """
    if orjson is not None and _plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate, say: the reference encoder decides
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise InvalidInput(f"value cannot be encoded as canonical JSON: {e}") from e


def _plain(value: Any) -> bool:
    """Whether orjson's sorted-keys encoding of `value` is byte for byte RFC 8785's, so the faster one may write it.

    True for strings, booleans, null, integers within 2**53, lists of those and objects whose keys are ASCII (so
    that orjson's order, by UTF-8 bytes, is RFC 8785's, by UTF-16 code units). Floats go to the reference encoder:
    their RFC 8785 form (ECMAScript number formatting) differs from orjson's in places. Both encoders escape
    strings alike (`tests/core/test_canonical_fast.py` checks every code point class and random documents).
    Measured: log events encode about 4x faster this way.
    """
    kind = type(value)
    if kind is dict:
        for k in value:
            if type(k) is not str or not k.isascii():
                return False
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        items = (value,)
    # One loop that settles scalars inline, without a call each: events are mostly scalars, and this runs for
    # every log entry (a usage batch encodes hundreds).
    for v in items:
        kind = type(v)
        if kind is str or kind is bool or v is None:
            continue
        if kind is int:
            if not -_SAFE_INT <= v <= _SAFE_INT:
                return False
        elif kind is dict or kind is list:
            if not _plain(v):
                return False
        else:
            return False
    return True
