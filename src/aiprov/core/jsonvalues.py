"""The rules every JSON document from a user obeys, and the parser that applies them.

A hub stores what it accepts and serves it back, hashed and logged in canonical JSON (RFC 8785), so it accepts only
what every JSON implementation reads the same way (I-JSON, RFC 7493): valid UTF-8 without lone surrogates, finite
numbers (no NaN, Infinity or 1e400), integers within ±(2**53 - 1), and at most MAX_DEPTH levels of nesting. Request
bodies are parsed by `loads`; values that come another way (a local push's metadata) are checked by `check_json`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiprov.core.text import check_unicode
from aiprov.errors import InvalidInput

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects: far more than a description of a model needs, far less than what
would exhaust a parser's (or an encoder's) recursion limit."""

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer every JSON implementation (a browser's, a float64) reads exactly."""

_INT_DIGITS = 16  # MAX_SAFE_INTEGER has 16 digits; a longer literal is refused before `int()` reads it


def loads(data: bytes | str, *, what: str = "the request body") -> Any:
    """Parse a JSON document under this module's rules. Raises InvalidInput saying which rule `what` broke."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{what} is not valid UTF-8 (byte {e.start})") from None
    _check_depth(text, what)
    try:
        value = json.loads(
            text, parse_constant=_no_constant(what), parse_int=_safe_int(what), parse_float=_finite_float(what)
        )
    except RecursionError:  # unreachable while _check_depth and json agree on what a string is; kept as the net
        raise InvalidInput(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{what} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    check_json(value, what=what)
    return value


# Strings (with their escapes) or brackets: what the depth scan below needs to see of a JSON text.
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _check_depth(text: str, what: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before parsing.

    json.loads's own limit is the interpreter's recursion limit, which other code may raise (and a deep document
    then costs a deep C recursion), so the depth is counted here, skipping the brackets inside strings.
    """
    depth = 0
    for m in _BRACKETS.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidInput(f"{what} is nested more than {MAX_DEPTH} levels deep")
        elif token in "]}":
            depth -= 1


def check_json(value: Any, *, what: str) -> None:
    """Raise InvalidInput unless `value` is a JSON value under this module's rules (types, numbers, strings, depth).

    Walks the value with an explicit stack, so a deep one costs no recursion.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is str:
            check_unicode(item, what=what)
        elif kind is bool or item is None:
            continue
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise InvalidInput(f"{what} has an integer beyond ±(2**53 - 1)", hint="write it as a string")
        elif kind is float:
            if not math.isfinite(item):
                raise InvalidInput(f"{what} has a number that is not finite ({item})", hint="JSON numbers are finite")
        elif kind is dict or kind is list:
            if depth > MAX_DEPTH:
                raise InvalidInput(f"{what} is nested more than {MAX_DEPTH} levels deep")
            if kind is dict:
                for key in item:
                    if type(key) is not str:
                        raise InvalidInput(f"{what} has a key that is not a string: {key!r}")
                    check_unicode(key, what=what)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
        else:
            raise InvalidInput(f"{what} has a {kind.__name__}, which JSON cannot carry")


def _no_constant(what: str) -> Any:
    def refuse(name: str) -> Any:
        raise InvalidInput(f"{what} has {name}, which is not a JSON number", hint="JSON numbers are finite")

    return refuse


def _safe_int(what: str) -> Any:
    def parse(literal: str) -> int:
        if len(literal.lstrip("-")) > _INT_DIGITS or abs(number := int(literal)) > MAX_SAFE_INTEGER:
            raise InvalidInput(f"{what} has an integer beyond ±(2**53 - 1)", hint="write it as a string")
        return number

    return parse


def _finite_float(what: str) -> Any:
    def parse(literal: str) -> float:
        number = float(literal)
        if not math.isfinite(number):
            raise InvalidInput(f"{what} has the number {literal[:20]}, beyond the largest finite one")
        return number

    return parse
