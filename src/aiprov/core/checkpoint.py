"""C2SP tlog-checkpoint: the note text that states a log's tree head.

```
<origin>
<tree size, ASCII decimal without leading zeros>
<base64 RFC 6962 root hash>
[extension lines]
```
The body is signed as a C2SP signed note (`aiprov.core.note`); this module only builds and parses the text.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from aiprov.core.merkle import HASH_SIZE
from aiprov.errors import InvalidInput

MAX_SIZE = 2**64 - 1  # tree sizes are uint64 everywhere else in the tlog ecosystem
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x1f]")  # no line may hold a newline or any other control character


def _check_line(what: str, line: str) -> None:
    if not line:
        raise InvalidInput(f"checkpoint {what} must not be empty")
    if _CONTROL.search(line):
        raise InvalidInput(f"checkpoint {what} {line!r} contains a newline or control character")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line("origin", self.origin)
        if not 0 <= self.size <= MAX_SIZE:
            raise InvalidInput(f"checkpoint tree size {self.size} is not a uint64")
        if len(self.root_hash) != HASH_SIZE:
            raise InvalidInput(f"checkpoint root hash has {len(self.root_hash)} bytes, not {HASH_SIZE}")
        for line in self.extensions:
            _check_line("extension line", line)

    def to_body(self) -> str:
        """Format the checkpoint note text, each line ending in a newline."""
        root = base64.b64encode(self.root_hash).decode()
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions))

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint note text (the note's text without the signatures).

        Strict, so that one checkpoint has one body: raises InvalidInput unless the body is at least three
        non-empty lines each ending in a newline, the size is a uint64 in decimal without leading zeros, and
        the root hash is 32 bytes in canonical padded standard base64.
        """
        if not body.endswith("\n"):
            raise InvalidInput("checkpoint body must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidInput(f"checkpoint body has {len(lines)} lines, fewer than origin, size and root hash")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise InvalidInput(f"checkpoint tree size {size_text!r} is not a decimal without leading zeros")
        try:
            root_hash = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise InvalidInput(f"checkpoint root hash {root_text!r} is not valid base64") from e
        if base64.b64encode(root_hash).decode() != root_text:
            raise InvalidInput(f"checkpoint root hash {root_text!r} is not canonical base64")
        return cls(origin, int(size_text), root_hash, tuple(extensions))
