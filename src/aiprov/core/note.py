"""C2SP signed-note v1.0.0: notes, Ed25519 note keys, signing and opening.

A signed note is UTF-8 text ending in a newline, a blank line, then signature lines
`— <key name> base64(key ID || signature)`. Keys use the Go `sumdb/note` text forms that every tlog tool
reads: verifier `name+hexid+base64(0x01 || public key)` and signer
`PRIVATE+KEY+name+hexid+base64(0x01 || seed)`, with key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4]
read big-endian.

`open_note` is the only way to trust a note's text: it ignores signatures from unknown keys, rejects the note
if a known key's signature fails, and rejects it if no known key signed it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aiprov.errors import InvalidInput, VerificationError

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash, space
# The spec asks verifiers to bound the work a hostile note can cause and to accept at least 16 signatures;
# 100 is the limit of Go's sumdb/note, so any note Go opens, we open.
MAX_SIGNATURES = 100

_HEX_ID = re.compile(r"[0-9a-fA-F]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # every ASCII control character except newline


def _is_valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def _check_name(name: str) -> None:
    if not _is_valid_name(name):
        raise InvalidInput(f"invalid note key name {name!r}", hint="non-empty, without spaces or '+'")


def _b64decode(text: str, what: str) -> bytes:
    # The message never quotes `text`: it may be a private key.
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInput(f"{what} is not valid base64") from e


def key_id(name: str, public_key: bytes) -> int:
    """Compute the C2SP key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || public key)[:4], uint32."""
    digest = sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _parse_key_id(hex_id: str) -> int:
    if not _HEX_ID.fullmatch(hex_id):
        raise InvalidInput(f"invalid note key ID {hex_id!r}", hint="expected 8 hex digits")
    return int(hex_id, 16)


def _parse_ed25519_key(encoded: str, what: str) -> bytes:
    raw = _b64decode(encoded, what)
    if not raw or raw[0] != ALG_ED25519:
        alg = f"0x{raw[0]:02x}" if raw else "none"
        raise InvalidInput(f"unsupported {what} algorithm {alg}", hint="only Ed25519 (0x01) note keys are supported")
    if len(raw) != 33:
        raise InvalidInput(f"an Ed25519 {what} has 32 bytes, not {len(raw) - 1}")
    return raw[1:]


@dataclass(frozen=True, slots=True)
class Verifier:
    """An Ed25519 note verifier key: a name and a 32-byte public key."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise InvalidInput(f"an Ed25519 public key has 32 bytes, not {len(self.public_key)}")
        try:
            key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as e:
            raise InvalidInput(f"invalid Ed25519 public key for {self.name!r}") from e
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))
        object.__setattr__(self, "_key", key)

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse `name+hexid+base64(0x01 || public key)`.

        Raises InvalidInput for a malformed key, an algorithm other than Ed25519, or a key ID that does not
        match the name and key.
        """
        name, _, rest = vkey.partition("+")
        hex_id, sep, encoded = rest.partition("+")
        if not sep:
            raise InvalidInput(f"malformed note verifier key {vkey!r}", hint="expected name+hexid+base64key")
        claimed = _parse_key_id(hex_id)
        verifier = cls(name, _parse_ed25519_key(encoded, "public key"))
        if verifier.key_id != claimed:
            raise InvalidInput(
                f"note verifier key {vkey!r} claims key ID {hex_id}, but its key has {verifier.key_id:08x}"
            )
        return verifier

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check an Ed25519 signature over `message`.

        Raises VerificationError if it does not verify.
        """
        try:
            self._key.verify(signature, message)
        except InvalidSignature as e:
            raise VerificationError(f"signature by {self.name}+{self.key_id:08x} does not verify") from e


class Signer:
    """An Ed25519 note signing key. Its text form holds the private seed: keep it out of logs and reprs."""

    __slots__ = ("_key", "_seed", "key_id", "name", "verifier")

    def __init__(self, name: str, seed: bytes) -> None:
        """Make a signer from a 32-byte RFC 8032 seed; raises InvalidInput for a bad name or seed length."""
        _check_name(name)
        if len(seed) != 32:
            raise InvalidInput(f"an Ed25519 seed has 32 bytes, not {len(seed)}")
        self._seed = seed
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.name = name
        self.verifier = Verifier(name, self._key.public_key().public_bytes_raw())
        self.key_id = self.verifier.key_id

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Make a new signer with a seed from the OS CSPRNG; raises InvalidInput for a bad name."""
        return cls(name, os.urandom(32))

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Parse `PRIVATE+KEY+name+hexid+base64(0x01 || seed)`.

        Raises InvalidInput for a malformed key, an algorithm other than Ed25519, or a key ID that does not
        match the name and derived public key. The message never includes the secret.
        """
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise InvalidInput("malformed note signer key", hint="expected PRIVATE+KEY+name+hexid+base64key")
        _, _, name, hex_id, encoded = parts
        claimed = _parse_key_id(hex_id)
        signer = cls(name, _parse_ed25519_key(encoded, "private key"))
        if signer.key_id != claimed:
            raise InvalidInput(
                f"note signer key for {name!r} claims key ID {hex_id}, but its key has {signer.key_id:08x}"
            )
        return signer

    def to_skey(self) -> str:
        """Format the `PRIVATE+KEY+...` text form, which contains the private seed."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self._seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        """Sign `message`: 64 Ed25519 bytes (deterministic, RFC 8032)."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Signer({self.name!r}, key_id={self.key_id:08x})"


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line: key name, key ID and the algorithm's signature bytes (without the key ID)."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not 0 <= self.key_id < 2**32:
            raise InvalidInput(f"a note key ID is a uint32, not {self.key_id}")
        if not self.signature:
            raise InvalidInput("empty note signature")

    def line(self) -> str:
        """Format the signature line, newline included."""
        encoded = base64.b64encode(self.key_id.to_bytes(4, "big") + self.signature).decode()
        return f"{SIG_PREFIX}{self.name} {encoded}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise InvalidInput("note text must end with a newline")
    if _CONTROL.search(text):
        raise InvalidInput("note text contains an ASCII control character other than newline")


@dataclass(frozen=True, slots=True)
class Note:
    """A note text with one or more signatures, checked for shape only: nothing here says who signed it."""

    text: str
    signatures: tuple[Signature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text)
        if not self.signatures:
            raise InvalidInput("a signed note needs at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise InvalidInput(f"note has more than {MAX_SIGNATURES} signatures")

    @classmethod
    def parse(cls, message: str | bytes) -> Note:
        """Split a signed note into text and signature lines without verifying anything.

        Raises InvalidInput if it is not valid UTF-8, contains control characters other than newline, lacks
        the blank line before the signatures, or has a malformed or excess signature line.
        """
        if isinstance(message, bytes):
            try:
                message = message.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InvalidInput("signed note is not valid UTF-8") from e
        if _CONTROL.search(message):
            raise InvalidInput("signed note contains an ASCII control character other than newline")
        # The text may hold blank lines of its own; the signatures follow the last one.
        split = message.rfind("\n\n")
        if split < 0:
            raise InvalidInput("signed note has no blank line before its signatures")
        text, block = message[: split + 1], message[split + 2 :]
        if not block.endswith("\n"):
            raise InvalidInput("signed note has no signature lines ending in a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise InvalidInput(f"signed note has more than {MAX_SIGNATURES} signatures")
        return cls(text, tuple(_parse_signature_line(line) for line in lines))

    def format(self) -> str:
        """Format the signed note: text, blank line, signature lines."""
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)


def _parse_signature_line(line: str) -> Signature:
    if not line.startswith(SIG_PREFIX):
        raise InvalidInput(f"malformed note signature line {line!r}")
    name, _, encoded = line[len(SIG_PREFIX) :].partition(" ")
    raw = _b64decode(encoded, "note signature")
    if not _is_valid_name(name) or len(raw) < 5:
        raise InvalidInput(f"malformed note signature line {line!r}")
    return Signature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def sign_note(text: str, signers: Iterable[Signer]) -> str:
    """Sign `text` (which must end with a newline) with each signer, in order, and format the note.

    Raises InvalidInput for text the format cannot carry (no final newline, control characters) or no signers.
    """
    _check_text(text)
    message = text.encode()
    sigs = tuple(Signature(s.name, s.key_id, s.sign(message)) for s in signers)
    return Note(text, sigs).format()


def open_note(message: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Verify a signed note against trusted verifier keys and return it with only the verified signatures.

    Per the spec a signature counts as known only when both its key name and key ID match a verifier; others
    are ignored. Repeated signatures by one key count once. Raises VerificationError if the note is malformed,
    if a known key's signature does not verify, or if no known key signed it.
    """
    try:
        note = Note.parse(message)
    except InvalidInput as e:
        raise VerificationError(f"malformed signed note: {e.message}") from e
    known = {(v.name, v.key_id): v for v in verifiers}
    signed_text = note.text.encode()
    verified: dict[tuple[str, int], Signature] = {}
    for sig in note.signatures:
        who = (sig.name, sig.key_id)
        verifier = known.get(who)
        if verifier is None or who in verified:
            continue
        verifier.verify(signed_text, sig.signature)
        verified[who] = sig
    if not verified:
        names = ", ".join(f"{n}+{k:08x}" for n, k in known) or "none"
        raise VerificationError(f"note is not signed by any trusted key (trusted: {names})")
    return Note(note.text, tuple(verified.values()))
