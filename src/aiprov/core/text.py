"""The rule for free text a user gives a model (description, license, code revision, parameters).

Text is stored, logged and shown in terminals and web pages, so it must be Unicode that encodes to UTF-8 (no lone
surrogates), bounded, and free of control characters a terminal would act on (an escape sequence, a carriage
line feed without a newline in a one-line field). A multi-line field (a description) may hold tabs and line breaks
(LF or CRLF).
"""

from __future__ import annotations

import re

from aiprov.errors import InvalidInput

MAX_DESCRIPTION = 10_000
MAX_LINE = 1_024
"""The longest one-line field (license, code revision, a parameter's key or value), in characters."""

CONTROLS = "\\x00-\\x1f\\x7f-\\x9f"
"""The C0 and C1 control characters and DEL, as a regular-expression class body."""
_CONTROL = re.compile(f"[{CONTROLS}]")
_CONTROL_BUT_LINES = re.compile("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNPRINTABLE = re.compile(f"[{CONTROLS}\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNPRINTABLE_BUT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def check_text(text: str, *, what: str, max_chars: int = MAX_LINE, multiline: bool = False) -> str:
    """Return `text` if it obeys the rule above; raise InvalidInput naming `what` and the rule it breaks."""
    if len(text) > max_chars:
        raise InvalidInput(f"{what} is {len(text)} characters long, over {max_chars}")
    check_unicode(text, what=what)
    bad = (_CONTROL_BUT_LINES if multiline else _CONTROL).search(text)
    if bad is not None:
        allowed = " (tabs and line breaks are allowed)" if multiline else ""
        raise InvalidInput(f"{what} contains the control character U+{ord(bad[0]):04X}{allowed}")
    return text


def check_unicode(text: str, *, what: str) -> None:
    """Raise InvalidInput if `text` has a lone surrogate (U+D800 to U+DFFF), which UTF-8 cannot encode.

    A JSON escape of one half of a surrogate pair makes one, and so does a file name that is not UTF-8.
    """
    if _SURROGATE.search(text) is not None:
        raise InvalidInput(f"{what} is not valid Unicode text (it has a lone surrogate, U+D800 to U+DFFF)")


def printable(text: str, *, multiline: bool = False) -> str:
    r"""`text` as a terminal may show it: control characters, bidirectional controls and surrogates escaped.

    Each becomes its Python escape (`\x1b`, `\u202e`), so stored text (old data from before these rules, free
    metadata) cannot move the cursor, retitle the window or display one name as another. `multiline` keeps tabs
    and line breaks.
    """
    pattern = _UNPRINTABLE_BUT_LINES if multiline else _UNPRINTABLE
    return pattern.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, singular for 1 (`count(1, "hash", "hashes")` is "1 hash", `count(2, "file")` "2 files")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
