"""Model signatures in the format of OpenSSF model-signing (its "key" method).

A signature is a Sigstore bundle v0.3 whose DSSE envelope carries an in-toto Statement v1 with predicate
`https://model_signing/signature/v1.0`: one resource (name, sha256) per file and a subject digest over them.
This module builds and reads those documents as values; the cryptography lives in `aiprov.signing`.

Where model-signing's wire format leaves freedom (JSON key order, whitespace of the payload) we choose
canonical JSON; what its verifier recomputes (resource order, subject digest, single-file naming,
ignore_paths) we mirror.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiprov.core.canonical import canonical_json
from aiprov.core.digest import ALGORITHM, Digest
from aiprov.core.manifest import IGNORED_TOP_LEVEL, Manifest, ManifestEntry, check_relative_path
from aiprov.errors import InvalidInput, VerificationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SERIALIZATION_METHOD = "files"
# model-signing names the only resource of a single-file model after the file's path relative to itself.
SINGLE_FILE_RESOURCE = "."

# How many file names an error message lists before summarising, so a huge model gives a readable error.
_MAX_NAMES = 5


def version_statement(model: str, version: int, digest: str, predicate_type: str, predicate: Any) -> dict[str, Any]:
    """An in-toto Statement v1 about model version `model@version` (`digest`: its `sha256:` manifest digest).

    The shape of aiprov's own statements (evaluations, claims, audits): the version as the one subject.
    """
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{model}@{version}", "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding of an envelope's type and payload: the bytes that get signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def public_key_hint(spki_pem: bytes) -> str:
    """Return model-signing's `publicKey.hint`: hex SHA-256 of the key's PEM SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_pem).hexdigest()


def root_digest(digests: Iterable[Digest]) -> Digest:
    """Return the subject digest: SHA-256 over the raw resource digests, in the order they are listed."""
    return Digest.of(b"".join(d.raw for d in digests))


def _path_order(entry: ManifestEntry) -> list[str]:
    # model-signing sorts resources as PurePosixPath, i.e. component by component, so "a/b" precedes "a.txt";
    # listing them in the same order gives the same subject digest for the same files.
    return entry.path.split("/")


def _under(path: str, ignored: str) -> bool:
    return path == ignored or path.startswith(ignored + "/")


def build_statement(
    manifest: Manifest,
    model_name: str,
    *,
    single_file: bool | None = None,
    ignore_paths: Iterable[str] = (),
) -> dict[str, Any]:
    """Build the in-toto Statement model-signing would produce for `manifest`, as a JSON value.

    `model_name` becomes the subject name (model-signing uses the directory's or file's base name; it is
    informative only). `single_file` says the model is one file rather than a directory holding one file; by
    default it is inferred from aiprov's convention, a one-entry manifest named after `model_name`.
    `ignore_paths` are extra model-relative paths the verifier must skip (e.g. a signature stored inside the
    model directory); the top-level git paths are always listed, as model-signing lists them.

    Raises InvalidInput for an empty model name, a malformed ignore path, or a manifest file that the recorded
    ignore_paths would make model-signing's verifier skip (it would then report that file as missing).
    """
    if not model_name:
        raise InvalidInput("a signed model needs a non-empty name")
    extra = {check_relative_path(p) for p in ignore_paths}
    ignored = sorted(IGNORED_TOP_LEVEL | extra)
    if single_file is None:
        single_file = len(manifest.entries) == 1 and manifest.entries[0].path == model_name
    if single_file:
        if len(manifest.entries) != 1:
            raise InvalidInput(f"a single-file model has one file, this manifest has {len(manifest.entries)}")
        entries = [manifest.entries[0]]
        names = [SINGLE_FILE_RESOURCE]
    else:
        entries = sorted(manifest.entries, key=_path_order)
        names = [e.path for e in entries]
        skipped = [e.path for e in entries if any(_under(e.path, i) for i in ignored)]
        if skipped:
            raise InvalidInput(
                f"files {_names(skipped)} are under ignore_paths, so verifiers would not check them",
                hint="leave them out of the manifest or out of ignore_paths",
            )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {ALGORITHM: root_digest(e.sha256 for e in entries).hex}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": SERIALIZATION_METHOD,
                "hash_type": ALGORITHM,
                # Our manifests never follow symlinks; the flag does not change any digest.
                "allow_symlinks": False,
                "ignore_paths": ignored,
            },
            "resources": [
                {"name": name, "algorithm": ALGORITHM, "digest": e.sha256.hex}
                for name, e in zip(names, entries, strict=True)
            ],
        },
    }


def statement_payload(
    manifest: Manifest,
    model_name: str,
    *,
    single_file: bool | None = None,
    ignore_paths: Iterable[str] = (),
) -> bytes:
    """Return the DSSE payload to sign, `build_statement(...)` as canonical JSON; raises as that does."""
    return canonical_json(build_statement(manifest, model_name, single_file=single_file, ignore_paths=ignore_paths))


@dataclass(frozen=True, slots=True)
class DsseEnvelope:
    """A DSSE envelope with its one signature (payload and signature as raw bytes)."""

    payload_type: str
    payload: bytes
    signature: bytes
    keyid: str = ""


@dataclass(frozen=True, slots=True)
class Bundle:
    """A parsed Sigstore bundle of the key method: an envelope and the signer's key hint, if recorded."""

    envelope: DsseEnvelope
    public_key_hint: str | None


def build_bundle(payload: bytes, signature: bytes, hint: str) -> bytes:
    """Build the Sigstore bundle v0.3 JSON for an in-toto `payload`, its DER ECDSA `signature` and key `hint`.

    Keys, their order and the compact layout are those model-signing writes.
    """
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode("utf-8")


def parse_bundle(data: bytes) -> Bundle:
    """Parse a Sigstore bundle v0.3 holding a DSSE envelope with exactly one signature.

    Does not verify anything. Raises InvalidInput naming the first malformed field.
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"signature bundle is not JSON: {e}") from e
    root = _object(doc, "bundle")
    if root.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise InvalidInput(
            f"unsupported bundle mediaType {root.get('mediaType')!r}", hint=f"expected {BUNDLE_MEDIA_TYPE}"
        )
    if "dsseEnvelope" not in root:
        raise InvalidInput("bundle has no dsseEnvelope; model signatures are DSSE envelopes")
    env = _object(root["dsseEnvelope"], "dsseEnvelope")
    signatures = env.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise InvalidInput("dsseEnvelope.signatures must hold exactly one signature")
    sig = _object(signatures[0], "dsseEnvelope.signatures[0]")
    keyid = sig.get("keyid", "")
    if not isinstance(keyid, str):
        raise InvalidInput("dsseEnvelope.signatures[0].keyid must be a string")
    envelope = DsseEnvelope(
        payload_type=_string(env, "payloadType", "dsseEnvelope"),
        payload=_base64(_string(env, "payload", "dsseEnvelope"), "dsseEnvelope.payload"),
        signature=_base64(_string(sig, "sig", "dsseEnvelope.signatures[0]"), "dsseEnvelope.signatures[0].sig"),
        keyid=keyid,
    )
    material = _object(root.get("verificationMaterial", {}), "verificationMaterial")
    key = _object(material.get("publicKey", {}), "verificationMaterial.publicKey")
    hint = key.get("hint")
    if hint is not None and not isinstance(hint, str):
        raise InvalidInput("verificationMaterial.publicKey.hint must be a string")
    # An empty hint is how older model-signing bundles say "no hint".
    return Bundle(envelope=envelope, public_key_hint=hint or None)


@dataclass(frozen=True, slots=True)
class AttestedModel:
    """What a model signature claims: the model's name and each file's SHA-256.

    For a single-file model, `files` holds one entry named after the subject (model-signing records the file
    as "." and treats its name as informative).
    """

    name: str
    files: tuple[tuple[str, Digest], ...]
    single_file: bool
    ignore_paths: tuple[str, ...]


def attested_model(bundle: Bundle) -> AttestedModel:
    """Return the files `bundle`'s statement attests. Does NOT check the signature: verify it first.

    Raises InvalidInput if the envelope is not an in-toto statement of a files/sha256 model signature, and
    VerificationError if the subject digest does not match the listed resources.
    """
    return parse_statement(bundle.envelope.payload_type, bundle.envelope.payload)


def parse_statement(payload_type: str, payload: bytes) -> AttestedModel:
    """Read a model-signing statement from a DSSE payload. Raises as `attested_model`."""
    if payload_type != PAYLOAD_TYPE:
        raise InvalidInput(f"envelope payloadType is {payload_type!r}, expected {PAYLOAD_TYPE!r}")
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"signed statement is not JSON: {e}") from e
    statement = _object(doc, "statement")
    if statement.get("_type") != STATEMENT_TYPE:
        raise InvalidInput(f"not an in-toto Statement v1 (_type is {statement.get('_type')!r})")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise InvalidInput(
            f"not a model signature: predicateType is {statement.get('predicateType')!r}",
            hint=f"aiprov verifies {PREDICATE_TYPE}",
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise InvalidInput("a model signature has exactly one subject")
    subject = _object(subjects[0], "subject[0]")
    name = _string(subject, "name", "subject[0]")
    signed_root = _digest(_object(subject.get("digest"), "subject[0].digest"), ALGORITHM, "subject[0].digest")
    predicate = _object(statement.get("predicate"), "predicate")
    ignore_paths = _serialization(_object(predicate.get("serialization"), "predicate.serialization"))
    resources = predicate.get("resources")
    if not isinstance(resources, list):
        raise InvalidInput("predicate.resources must be a list")
    listed: list[tuple[str, Digest]] = []
    for i, item in enumerate(resources):
        where = f"predicate.resources[{i}]"
        resource = _object(item, where)
        if resource.get("algorithm") != ALGORITHM:
            raise InvalidInput(f"{where}.algorithm is {resource.get('algorithm')!r}, aiprov verifies sha256")
        listed.append((_string(resource, "name", where), _digest(resource, "digest", where)))
    if root_digest(d for _, d in listed) != signed_root:
        raise VerificationError(
            f"signed statement is inconsistent: subject digest {signed_root} is not the digest of its resources"
        )
    single_file = [n for n, _ in listed] == [SINGLE_FILE_RESOURCE]
    files = [(name, listed[0][1])] if single_file else listed
    paths = [check_relative_path(p) for p, _ in files]
    if len(set(paths)) != len(paths):
        raise InvalidInput("signed statement lists a file twice")
    return AttestedModel(name=name, files=tuple(files), single_file=single_file, ignore_paths=ignore_paths)


def check_matches(attested: AttestedModel, manifest: Manifest) -> None:
    """Check that `manifest` holds exactly the attested files with the attested digests.

    Stricter than model-signing: a manifest file under the signer's ignore_paths is an error, because the
    signature says nothing about it. A single-file signature matches a one-file manifest of any file name, as
    in model-signing, where the name is informative.

    Raises VerificationError naming every missing, extra and changed file.
    """
    actual = {e.path: e.sha256 for e in manifest.entries}
    if attested.single_file and len(actual) == 1:
        ((path, digest),) = actual.items()
        signed = attested.files[0][1]
        if digest != signed:
            raise VerificationError(
                f"signature does not match the model: {path} changed (signed {signed}, got {digest})"
            )
        return
    signed_files = dict(attested.files)
    missing = sorted(signed_files.keys() - actual.keys())
    extra = sorted(actual.keys() - signed_files.keys())
    changed = sorted(p for p in signed_files.keys() & actual.keys() if signed_files[p] != actual[p])
    problems = []
    if missing:
        problems.append(f"missing from the model: {_names(missing)}")
    if extra:
        excluded = [p for p in extra if any(_under(p, i) for i in attested.ignore_paths)]
        note = f" ({_names(excluded)} excluded by the signer's ignore_paths)" if excluded else ""
        problems.append(f"not covered by the signature: {_names(extra)}{note}")
    if changed:
        problems.append("changed: " + _names([f"{p} (signed {signed_files[p]}, got {actual[p]})" for p in changed]))
    if problems:
        raise VerificationError(f"signature of {attested.name!r} does not match the model: " + "; ".join(problems))


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_NAMES])
    return shown if len(items) <= _MAX_NAMES else f"{shown} and {len(items) - _MAX_NAMES} more"


def _serialization(serialization: Mapping[str, Any]) -> tuple[str, ...]:
    # Only "files" with sha256 yields digests of whole files that a Manifest can be compared with.
    method, hash_type = serialization.get("method"), serialization.get("hash_type")
    if method != SERIALIZATION_METHOD or hash_type != ALGORITHM:
        raise InvalidInput(
            f"unsupported serialization method={method!r} hash_type={hash_type!r}",
            hint="aiprov verifies model-signing signatures made with files/sha256 (the default)",
        )
    ignore_paths = serialization.get("ignore_paths", [])
    if not isinstance(ignore_paths, list) or not all(isinstance(p, str) for p in ignore_paths):
        raise InvalidInput("predicate.serialization.ignore_paths must be a list of strings")
    return tuple(ignore_paths)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"malformed signature: {where} must be a JSON object")
    return value


def _string(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise InvalidInput(f"malformed signature: {where}.{key} must be a string")
    return value


def _digest(obj: Mapping[str, Any], key: str, where: str) -> Digest:
    try:
        # model-signing decodes hex case-insensitively (bytes.fromhex), so we do too.
        return Digest(_string(obj, key, where).lower())
    except InvalidInput as e:
        raise InvalidInput(f"malformed signature: {where}.{key} is not a SHA-256 hex digest") from e


def _base64(text: str, where: str) -> bytes:
    # The protobuf JSON mapping of bytes accepts standard and URL-safe base64, with or without padding.
    normalized = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
    except binascii.Error as e:
        raise InvalidInput(f"malformed signature: {where} is not base64") from e
