"""The one canonical JSON encoding (RFC 8785, JSON Canonicalization Scheme).

Every object that is hashed, signed or logged is encoded by `canonical_json`, so two implementations that agree on
the value agree on the bytes. The `rfc8785` package (Trail of Bits, used by sigstore-python) does the encoding.
"""

from __future__ import annotations

from typing import Any

import rfc8785

from aiprov.errors import InvalidInput


def canonical_json(value: Any) -> bytes:
    """Encode `value` as RFC 8785 canonical JSON (UTF-8 bytes).

    Raises InvalidInput for values JSON cannot carry exactly (NaN, infinities, integers beyond 2**53, non-string
    keys, unknown types).
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise InvalidInput(f"value cannot be encoded as canonical JSON: {e}") from e
