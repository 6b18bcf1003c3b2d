"""Model names and references.

A model is `owner/name`. A reference picks a version: `owner/name` (the latest), `owner/name@3` (a number),
`owner/name@prod` (an alias), or a manifest digest or unambiguous prefix of one (`sha256:1f2e…`, 4+ hex digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiprov.core.digest import is_digest_prefix
from aiprov.errors import InvalidInput

OWNER_PATTERN = r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?"
NAME_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?"
ALIAS_PATTERN = r"[A-Za-z][A-Za-z0-9._-]{0,63}"
"""The rules for owners, names and aliases, also given to the API's path parameters (anchored there)."""

_OWNER = re.compile(OWNER_PATTERN)
_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
# ASCII digits only, and few enough that `int()` is cheap and the number fits every database's integer column:
# `int()` also takes other scripts' digits (U+0661 is 1), superscripts raise, and 4,300+ digits raise ValueError.
_NUMBER = re.compile(r"[0-9]{1,10}")

MAX_VERSION = 2**31 - 1
"""The highest version number a reference may name (a signed 32-bit integer, what every backend stores)."""

MAX_REF_LENGTH = 300
"""The longest reference text: OWNER (64) / NAME (128) @ ALIAS (64), or `sha256:` and 64 hex digits."""


def is_owner(text: str) -> bool:
    """Whether `text` is a valid owner (what `ModelName.parse` accepts before the slash)."""
    return _OWNER.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class ModelName:
    owner: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse `owner/name`; raise InvalidInput naming the rule that was broken."""
        owner, sep, name = text.partition("/")
        if not sep:
            raise InvalidInput(f"model name {text!r} is not OWNER/NAME", hint="e.g. alice/iris-classifier")
        if not _OWNER.fullmatch(owner):
            raise InvalidInput(
                f"owner {owner!r} in {text!r} is not valid",
                hint="lowercase letters, digits, '.', '_' or '-', at most 64, starting and ending alphanumeric",
            )
        if not _NAME.fullmatch(name):
            raise InvalidInput(
                f"name {name!r} in {text!r} is not valid",
                hint="letters, digits, '.', '_' or '-', at most 128, starting and ending alphanumeric",
            )
        return cls(owner, name)

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"


def check_alias(alias: str) -> str:
    """Return `alias` if valid; aliases start with a letter, so they never look like version numbers."""
    if not _ALIAS.fullmatch(alias):
        raise InvalidInput(
            f"alias {alias!r} is not valid",
            hint="a letter, then letters, digits, '.', '_' or '-', at most 64",
        )
    return alias


def parse_version_number(text: str) -> int | None:
    """The version number `text` names (ASCII digits, 1 to MAX_VERSION), or None if it is not a number (an alias).

    Raises InvalidInput for 0, a number over MAX_VERSION, or digits other than 0-9 ('²', U+0661): they look like
    a number but name no version.
    """
    if text.isascii() and text.isdigit():
        if _NUMBER.fullmatch(text) and 1 <= int(text) <= MAX_VERSION:
            return int(text)
        shown = text if len(text) <= 20 else f"{text[:20]}…"
        raise InvalidInput(
            f"there is no version {shown}", hint=f"versions are numbered from 1 to at most {MAX_VERSION}"
        )
    if text and all(c.isnumeric() for c in text):
        raise InvalidInput(f"version {text[:20]!r} is not a number", hint="write version numbers with the digits 0-9")
    return None


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed reference: either a name with an optional selector, or a digest prefix."""

    model: ModelName | None = None
    number: int | None = None
    alias: str | None = None
    digest_prefix: str | None = None

    @classmethod
    def parse(cls, text: str) -> Ref:
        """Parse a model reference; raise InvalidInput for anything else."""
        text = text.strip()
        if len(text) > MAX_REF_LENGTH:
            raise InvalidInput(f"reference {text[:40]!r}… is over {MAX_REF_LENGTH} characters")
        if text.lower().startswith("sha256:"):
            prefix = text.lower()
            if not is_digest_prefix(prefix):
                raise InvalidInput(f"{text!r} is not a digest or digest prefix", hint="sha256: and 4 to 64 hex digits")
            return cls(digest_prefix=prefix)
        base, sep, selector = text.partition("@")
        model = ModelName.parse(base)
        if not sep:
            return cls(model=model)
        number = parse_version_number(selector)
        if number is not None:
            return cls(model=model, number=number)
        return cls(model=model, alias=check_alias(selector))

    def __str__(self) -> str:
        if self.digest_prefix is not None:
            return self.digest_prefix
        suffix = f"@{self.number}" if self.number is not None else f"@{self.alias}" if self.alias else ""
        return f"{self.model}{suffix}"
