"""Signing keys and model signatures that OpenSSF model-signing's "key" method accepts and produces.

The documents are built and read by `aiprov.core.attestation`; this module adds the ECDSA keys (P-256 by
default), reading key files, and the two cryptographic steps: signing the DSSE PAE and verifying it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aiprov.core import attestation
from aiprov.core.attestation import AttestedModel
from aiprov.core.manifest import Manifest
from aiprov.errors import InvalidInput, VerificationError

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey

# The curves model-signing accepts, each with the hash it pairs with it (Sigstore's protobuf-specs choices).
_CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def generate_key_pair(password: bytes | None = None) -> tuple[bytes, bytes]:
    """Generate an ECDSA P-256 key pair as (PKCS#8 private PEM, SubjectPublicKeyInfo public PEM).

    With `password`, the private PEM is encrypted with it.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return private_pem, public_key_pem(key.public_key())


def private_key_from_pem(data: bytes, password: bytes | None = None, *, source: str = "private key") -> PrivateKey:
    """Load an EC private key from PEM `data`; `source` names it in errors.

    Raises InvalidInput if the data is not a PEM private key, the password is wrong, missing or superfluous,
    or the key is not on a curve model-signing supports (P-256, P-384, P-521).
    """
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError as e:
        # cryptography reports a missing or superfluous password as a TypeError.
        if password is None:
            raise InvalidInput(f"{source} is encrypted", hint="give its password") from e
        raise InvalidInput(f"{source} is not encrypted", hint="give no password") from e
    except ValueError as e:
        if password is not None and "password" in str(e).lower():
            raise InvalidInput(f"wrong password for {source}") from e
        raise InvalidInput(f"{source} is not a PEM private key: {e}") from e
    except UnsupportedAlgorithm as e:
        raise InvalidInput(f"{source} uses an unsupported algorithm: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"{source} is not an elliptic-curve key", hint="model signatures use ECDSA P-256")
    _check_curve(key.curve, source)
    return key


def public_key_from_pem(data: bytes, *, source: str = "public key") -> PublicKey:
    """Load an EC public key from PEM SubjectPublicKeyInfo `data`; `source` names it in errors.

    Raises InvalidInput if the data is not a PEM public key or the key is not on a supported curve.
    """
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InvalidInput(f"{source} is not a PEM public key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidInput(f"{source} is not an elliptic-curve key", hint="model signatures use ECDSA P-256")
    _check_curve(key.curve, source)
    return key


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKey:
    """Read an EC private key from the PEM file at `path`. Raises InvalidInput as `private_key_from_pem`."""
    return private_key_from_pem(_read(path, "private key"), password, source=f"private key {path}")


def load_public_key(path: Path) -> PublicKey:
    """Read an EC public key from the PEM file at `path`. Raises InvalidInput as `public_key_from_pem`."""
    return public_key_from_pem(_read(path, "public key"), source=f"public key {path}")


def key_fingerprint(key: PublicKey | PrivateKey) -> str:
    """Return who signed: hex SHA-256 of the DER SubjectPublicKeyInfo of `key` (or of its public half)."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sign_manifest(
    manifest: Manifest,
    model_name: str,
    private_key: PrivateKey,
    *,
    single_file: bool | None = None,
    ignore_paths: Iterable[str] = (),
) -> bytes:
    """Sign `manifest` as model `model_name`: a Sigstore bundle that `model_signing verify key` accepts.

    `single_file` and `ignore_paths` are as in `aiprov.core.attestation.build_statement`; pass the signature
    file's model-relative path in `ignore_paths` when it is stored inside the model directory.
    Raises InvalidInput as `build_statement` does.
    """
    payload = attestation.statement_payload(manifest, model_name, single_file=single_file, ignore_paths=ignore_paths)
    return sign_payload(payload, private_key)


def sign_payload(payload: bytes, private_key: PrivateKey) -> bytes:
    """A Sigstore bundle v0.3 whose DSSE envelope carries `payload` (an in-toto statement) signed with the key."""
    signature = private_key.sign(attestation.pae(attestation.PAYLOAD_TYPE, payload), _ecdsa(private_key.curve))
    return attestation.build_bundle(
        payload, signature, attestation.public_key_hint(public_key_pem(private_key.public_key()))
    )


def open_bundle(bundle: bytes, public_key: PublicKey) -> attestation.Bundle:
    """Parse `bundle` and check it is `public_key`'s signature; return it (its payload is then trusted).

    Raises InvalidInput if the bundle is malformed, VerificationError if another key made it or it was altered.
    """
    parsed = attestation.parse_bundle(bundle)
    hint = attestation.public_key_hint(public_key_pem(public_key))
    if parsed.public_key_hint is not None and parsed.public_key_hint != hint:
        raise VerificationError(
            f"signature was made by another key (bundle key hint {parsed.public_key_hint}, "
            f"given key {key_fingerprint(public_key)} has hint {hint})",
            hint="verify with the signer's public key",
        )
    envelope = parsed.envelope
    try:
        public_key.verify(
            envelope.signature,
            attestation.pae(envelope.payload_type, envelope.payload),
            _ecdsa(public_key.curve),
        )
    except InvalidSignature as e:
        raise VerificationError(
            f"bad signature: the bundle was not signed by key {key_fingerprint(public_key)} or was altered"
        ) from e
    return parsed


def verify_bundle(bundle: bytes, manifest: Manifest, public_key: PublicKey) -> AttestedModel:
    """Verify `bundle` is `public_key`'s signature over exactly the files of `manifest`; return the claim.

    Raises InvalidInput if the bundle is malformed or not a files/sha256 model signature, and
    VerificationError if another key made it, its signature is bad, or a file is missing, extra or changed
    (the message names the files).
    """
    claim = attestation.attested_model(open_bundle(bundle, public_key))
    attestation.check_matches(claim, manifest)
    return claim


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read {what} file {path}: {e.strerror or e}") from e


def _check_curve(curve: ec.EllipticCurve, source: str) -> None:
    if curve.name not in _CURVE_HASHES:
        raise InvalidInput(f"{source} is on curve {curve.name}", hint="use P-256 (secp256r1)")


def _ecdsa(curve: ec.EllipticCurve) -> ec.ECDSA:
    return ec.ECDSA(_CURVE_HASHES[curve.name]())


def public_key_pem(key: PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of `key`."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
