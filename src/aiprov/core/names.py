"""Model names and references.

A model is `owner/name`. A reference picks a version: `owner/name` (the latest), `owner/name@3` (a number),
`owner/name@prod` (an alias), or a manifest digest or unambiguous prefix of one (`sha256:1f2e…`, 4+ hex digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiprov.core.digest import is_digest_prefix
from aiprov.errors import InvalidInput

_OWNER = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")


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
        if text.lower().startswith("sha256:"):
            prefix = text.lower()
            if not is_digest_prefix(prefix):
                raise InvalidInput(f"{text!r} is not a digest or digest prefix", hint="sha256: and 4 to 64 hex digits")
            return cls(digest_prefix=prefix)
        base, sep, selector = text.partition("@")
        model = ModelName.parse(base)
        if not sep:
            return cls(model=model)
        if selector.isdigit() and int(selector) >= 1:
            return cls(model=model, number=int(selector))
        return cls(model=model, alias=check_alias(selector))

    def __str__(self) -> str:
        if self.digest_prefix is not None:
            return self.digest_prefix
        suffix = f"@{self.number}" if self.number is not None else f"@{self.alias}" if self.alias else ""
        return f"{self.model}{suffix}"
