"""Model signatures: aiprov's own round trips and interop with the OpenSSF `model_signing` CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from aiprov.core import attestation
from aiprov.core.digest import Digest
from aiprov.core.manifest import IGNORED_TOP_LEVEL, Manifest, ManifestEntry
from aiprov.errors import InvalidInput, VerificationError
from aiprov.signing import (
    generate_key_pair,
    key_fingerprint,
    load_private_key,
    load_public_key,
    private_key_from_pem,
    public_key_from_pem,
    sign_manifest,
    verify_bundle,
)

# ----------------------------------------------------------------------------------------------------
# Factories


@dataclass(frozen=True)
class Keys:
    private: ec.EllipticCurvePrivateKey
    public: ec.EllipticCurvePublicKey
    private_path: Path
    public_path: Path


@pytest.fixture
def make_keys(tmp_path: Path) -> Callable[[str], Keys]:
    def make(name: str = "key") -> Keys:
        private_pem, public_pem = generate_key_pair()
        private_path, public_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub"
        private_path.write_bytes(private_pem)
        public_path.write_bytes(public_pem)
        return Keys(load_private_key(private_path), load_public_key(public_path), private_path, public_path)

    return make


@pytest.fixture
def keys(make_keys: Callable[[str], Keys]) -> Keys:
    return make_keys("signer")


DEFAULT_FILES = {"config.json": b'{"layers": 2}', "weights/a.bin": b"\x00\x01\x02", "weights/b.bin": b"bbbb"}


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    def make(files: dict[str, bytes] | None = None, name: str = "model") -> Path:
        root = tmp_path / "models" / name
        for rel, data in (DEFAULT_FILES if files is None else files).items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        return root

    return make


def manifest_of(model: Path) -> Manifest:
    """Hash a model as aiprov describes it: every file but the top-level git paths model-signing skips."""
    if model.is_file():
        return Manifest.build([entry(model.name, model.read_bytes())])
    entries = []
    for path in model.rglob("*"):
        rel = path.relative_to(model)
        if path.is_file() and rel.parts[0] not in IGNORED_TOP_LEVEL:
            entries.append(entry(rel.as_posix(), path.read_bytes()))
    return Manifest.build(entries)


def entry(path: str, data: bytes) -> ManifestEntry:
    return ManifestEntry(path, len(data), Digest(hashlib.sha256(data).hexdigest()))


def flip_first_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


def payload_of(bundle: bytes) -> dict[str, Any]:
    doc = json.loads(bundle)
    result: dict[str, Any] = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return result


def rebundle(bundle: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(bundle)
    change(doc)
    return json.dumps(doc).encode()


def resign(statement: dict[str, Any], keys: Keys) -> bytes:
    """Sign an arbitrary statement, to check what the verifier does with documents we would never produce."""
    payload = json.dumps(statement).encode()
    sig = keys.private.sign(attestation.pae(attestation.PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    hint = attestation.public_key_hint(
        keys.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return attestation.build_bundle(payload, sig, hint)


# ----------------------------------------------------------------------------------------------------
# DSSE PAE and the statement


def test_pae_matches_the_dsse_spec_example() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md#pae
    assert (
        attestation.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert attestation.pae("t", "é".encode()) == b"DSSEv1 1 t 2 " + "é".encode()


def test_pae_matches_model_signing() -> None:
    sign_sigstore_pb = pytest.importorskip("model_signing._signing.sign_sigstore_pb")
    payload = b'{"_type": "x"}'
    assert attestation.pae(attestation.PAYLOAD_TYPE, payload) == sign_sigstore_pb.pae(payload)


def test_statement_lists_resources_component_by_component_like_model_signing() -> None:
    manifest = Manifest.build([entry("a.txt", b"1"), entry("a/b", b"2"), entry("a-b", b"3")])
    statement = attestation.build_statement(manifest, "m")
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == ["a/b", "a-b", "a.txt"]
    digests = [Digest(r["digest"]) for r in statement["predicate"]["resources"]]
    assert statement["subject"] == [{"name": "m", "digest": {"sha256": attestation.root_digest(digests).hex}}]


def test_statement_records_model_signing_serialization_with_git_ignore_paths() -> None:
    statement = attestation.build_statement(Manifest.build([entry("w.bin", b"w")]), "m", ignore_paths=["m.sig"])
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore", "m.sig"],
    }


def test_single_file_model_is_recorded_as_dot_like_model_signing() -> None:
    manifest = Manifest.build([entry("model.onnx", b"onnx")])
    statement = attestation.build_statement(manifest, "model.onnx")
    assert statement["predicate"]["resources"] == [
        {"name": ".", "algorithm": "sha256", "digest": hashlib.sha256(b"onnx").hexdigest()}
    ]
    as_directory = attestation.build_statement(manifest, "model.onnx", single_file=False)
    assert as_directory["predicate"]["resources"][0]["name"] == "model.onnx"


def test_signing_refuses_a_file_that_ignore_paths_would_hide() -> None:
    manifest = Manifest.build([entry("w.bin", b"w"), entry("model.sig", b"sig")])
    with pytest.raises(InvalidInput, match=r"model\.sig"):
        attestation.build_statement(manifest, "m", ignore_paths=["model.sig"])
    with pytest.raises(InvalidInput, match=r"\.github/ci\.yml"):
        attestation.build_statement(Manifest.build([entry(".github/ci.yml", b"x"), entry("w", b"w")]), "m")


# ----------------------------------------------------------------------------------------------------
# Round trips and tampering (pure aiprov)


def test_round_trip_returns_what_was_signed(keys: Keys) -> None:
    manifest = Manifest.build([entry("b.bin", b"b"), entry("a/x.json", b"{}")])
    bundle = sign_manifest(manifest, "my-model", keys.private)
    claim = verify_bundle(bundle, manifest, keys.public)
    assert claim.name == "my-model"
    assert not claim.single_file
    assert dict(claim.files) == {e.path: e.sha256 for e in manifest.entries}


def test_bundle_has_model_signing_layout(keys: Keys) -> None:
    bundle = sign_manifest(Manifest.build([entry("w.bin", b"w")]), "m", keys.private)
    doc = json.loads(bundle)
    assert list(doc) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    public_pem = keys.public_path.read_bytes()
    assert doc["verificationMaterial"] == {
        "publicKey": {"hint": hashlib.sha256(public_pem).hexdigest()},
        "tlogEntries": [],
    }
    assert doc["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    assert [set(s) for s in doc["dsseEnvelope"]["signatures"]] == [{"sig", "keyid"}]


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.lists(st.sampled_from(["a", "b", "a.b", "a-b", "é", "x y"]), min_size=1, max_size=3).map("/".join),
        st.binary(max_size=8),
        min_size=1,
        max_size=6,
    )
)
def test_any_manifest_round_trips_through_its_statement(files: dict[str, bytes]) -> None:
    # Paths where one is a directory of another cannot form a manifest; keep only the leaves.
    leaves = {p: d for p, d in files.items() if not any(q.startswith(p + "/") for q in files)}
    manifest = Manifest.build(entry(p, d) for p, d in leaves.items())
    payload = attestation.statement_payload(manifest, "m", single_file=False)
    claim = attestation.parse_statement(attestation.PAYLOAD_TYPE, payload)
    assert dict(claim.files) == {e.path: e.sha256 for e in manifest.entries}
    attestation.check_matches(claim, manifest)


def test_one_changed_digest_byte_fails_naming_the_file(keys: Keys) -> None:
    manifest = Manifest.build([entry("a.bin", b"a"), entry("b.bin", b"b")])
    bundle = sign_manifest(manifest, "m", keys.private)
    changed = Manifest.build([entry("a.bin", b"a"), entry("b.bin", b"c")])
    with pytest.raises(VerificationError, match=r"changed: b\.bin") as e:
        verify_bundle(bundle, changed, keys.public)
    assert "a.bin" not in e.value.message


def test_extra_file_fails_naming_it(keys: Keys) -> None:
    manifest = Manifest.build([entry("a.bin", b"a")])
    bundle = sign_manifest(manifest, "m", keys.private, single_file=False)
    with pytest.raises(VerificationError, match=r"not covered by the signature: evil\.pkl"):
        verify_bundle(bundle, Manifest.build([*manifest.entries, entry("evil.pkl", b"x")]), keys.public)


def test_missing_file_fails_naming_it(keys: Keys) -> None:
    manifest = Manifest.build([entry("a.bin", b"a"), entry("b.bin", b"b")])
    bundle = sign_manifest(manifest, "m", keys.private)
    with pytest.raises(VerificationError, match=r"missing from the model: b\.bin"):
        verify_bundle(bundle, Manifest.build([entry("a.bin", b"a")]), keys.public)


def test_wrong_key_fails_on_the_key_hint(keys: Keys, make_keys: Callable[[str], Keys]) -> None:
    manifest = Manifest.build([entry("a.bin", b"a")])
    bundle = sign_manifest(manifest, "m", keys.private)
    with pytest.raises(VerificationError, match="another key"):
        verify_bundle(bundle, manifest, make_keys("other").public)


def test_wrong_key_without_hint_fails_as_bad_signature(keys: Keys, make_keys: Callable[[str], Keys]) -> None:
    manifest = Manifest.build([entry("a.bin", b"a")])
    bundle = rebundle(sign_manifest(manifest, "m", keys.private), lambda d: d["verificationMaterial"].pop("publicKey"))
    verify_bundle(bundle, manifest, keys.public)
    with pytest.raises(VerificationError, match="bad signature"):
        verify_bundle(bundle, manifest, make_keys("other").public)


def test_altered_payload_fails_as_bad_signature(keys: Keys) -> None:
    manifest = Manifest.build([entry("a.bin", b"a")])
    bundle = sign_manifest(manifest, "m", keys.private)
    other = attestation.statement_payload(Manifest.build([entry("a.bin", b"b")]), "m")

    def swap_payload(doc: dict[str, Any]) -> None:
        doc["dsseEnvelope"]["payload"] = base64.b64encode(other).decode()

    with pytest.raises(VerificationError, match="bad signature"):
        verify_bundle(rebundle(bundle, swap_payload), Manifest.build([entry("a.bin", b"b")]), keys.public)


def test_signed_but_inconsistent_subject_digest_fails(keys: Keys) -> None:
    statement = attestation.build_statement(Manifest.build([entry("a.bin", b"a")]), "m", single_file=False)
    statement["predicate"]["resources"][0]["digest"] = hashlib.sha256(b"b").hexdigest()
    with pytest.raises(VerificationError, match="inconsistent"):
        verify_bundle(resign(statement, keys), Manifest.build([entry("a.bin", b"b")]), keys.public)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.1"), "mediaType"),
        (lambda d: d.pop("dsseEnvelope"), "no dsseEnvelope"),
        (lambda d: d["dsseEnvelope"].update(payload="***"), "payload is not base64"),
        (lambda d: d["dsseEnvelope"]["signatures"].append({"sig": "AA=="}), "exactly one signature"),
        (lambda d: d["dsseEnvelope"]["signatures"].clear(), "exactly one signature"),
        (lambda d: d["dsseEnvelope"].pop("payloadType"), "payloadType must be a string"),
        (lambda d: d["verificationMaterial"]["publicKey"].update(hint=7), "hint must be a string"),
    ],
)
def test_malformed_bundle_is_invalid_input_naming_the_field(
    keys: Keys, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    manifest = Manifest.build([entry("a.bin", b"a")])
    bundle = rebundle(sign_manifest(manifest, "m", keys.private), change)
    with pytest.raises(InvalidInput, match=message):
        verify_bundle(bundle, manifest, keys.public)


@pytest.mark.parametrize("data", [b"", b"not json", b"\xff\xfe", b"[]"])
def test_bundle_that_is_not_a_json_object_is_invalid_input(keys: Keys, data: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"not JSON|must be a JSON object"):
        verify_bundle(data, Manifest.build([entry("a.bin", b"a")]), keys.public)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(predicateType="https://model_signing/Digests/v0.1"), "not a model signature"),
        (lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "Statement v1"),
        (lambda s: s["predicate"]["serialization"].update(method="shards"), "unsupported serialization"),
        (lambda s: s["predicate"]["resources"][0].update(algorithm="blake2"), "aiprov verifies sha256"),
        (lambda s: s["predicate"]["resources"][0].update(digest="zz"), "not a SHA-256 hex digest"),
        (lambda s: s["predicate"]["resources"][0].update(name="../escape"), "'..'"),
        (lambda s: s.update(subject=[]), "exactly one subject"),
    ],
)
def test_signed_statement_aiprov_cannot_check_is_invalid_input(
    keys: Keys, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    manifest = Manifest.build([entry("a.bin", b"a")])
    statement = attestation.build_statement(manifest, "m", single_file=False)
    change(statement)
    with pytest.raises(InvalidInput, match=message):
        verify_bundle(resign(statement, keys), manifest, keys.public)


# ----------------------------------------------------------------------------------------------------
# Keys


def test_fingerprint_is_sha256_of_der_public_key_for_either_half(keys: Keys) -> None:
    der = keys.public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_fingerprint(keys.public) == key_fingerprint(keys.private) == hashlib.sha256(der).hexdigest()


def test_encrypted_private_key_needs_the_right_password(tmp_path: Path) -> None:
    private_pem, _ = generate_key_pair(password=b"s3cret")
    path = tmp_path / "enc.pem"
    path.write_bytes(private_pem)
    assert isinstance(load_private_key(path, b"s3cret"), ec.EllipticCurvePrivateKey)
    with pytest.raises(InvalidInput, match="wrong password"):
        load_private_key(path, b"guess")
    with pytest.raises(InvalidInput, match="is encrypted") as e:
        load_private_key(path)
    assert str(path) in e.value.message


def test_password_for_plain_private_key_is_refused() -> None:
    private_pem, _ = generate_key_pair()
    with pytest.raises(InvalidInput, match="not encrypted"):
        private_key_from_pem(private_pem, b"pw")


def test_unreadable_or_wrong_key_files_are_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read private key file"):
        load_private_key(tmp_path / "absent.pem")
    with pytest.raises(InvalidInput, match="cannot read public key file"):
        load_public_key(tmp_path / "absent.pub")
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"hello")
    with pytest.raises(InvalidInput, match="not a PEM private key"):
        load_private_key(junk)
    with pytest.raises(InvalidInput, match="not a PEM public key"):
        load_public_key(junk)
    private_pem, public_pem = generate_key_pair()
    with pytest.raises(InvalidInput, match="not a PEM public key"):
        public_key_from_pem(private_pem)
    with pytest.raises(InvalidInput, match="not a PEM private key"):
        private_key_from_pem(public_pem)


def test_non_ec_and_unsupported_curve_keys_are_refused() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidInput, match="not an elliptic-curve key"):
        private_key_from_pem(rsa_pem)
    k1 = ec.generate_private_key(ec.SECP256K1()).public_key()
    k1_pem = k1.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InvalidInput, match="secp256k1"):
        public_key_from_pem(k1_pem)


# ----------------------------------------------------------------------------------------------------
# Interop with the OpenSSF model_signing CLI


def model_signing(*args: str | Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("model_signing")
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ms_sign(model: Path, signature: Path, keys: Keys) -> bytes:
    done = model_signing("sign", "key", model, "--signature", signature, "--private_key", keys.private_path)
    assert done.returncode == 0, done.stderr
    return signature.read_bytes()


def ms_verify(model: Path, signature: Path, keys: Keys) -> subprocess.CompletedProcess[str]:
    return model_signing("verify", "key", model, "--signature", signature, "--public_key", keys.public_path)


def aiprov_sign(model: Path, signature: Path, keys: Keys, **options: Any) -> None:
    signature.write_bytes(sign_manifest(manifest_of(model), model.name, keys.private, **options))


@pytest.fixture
def git_model(make_model: Callable[..., Path]) -> Path:
    # Top-level git paths are outside the signature for both tools; a nested .git is an ordinary file.
    return make_model(
        {
            **DEFAULT_FILES,
            ".git/HEAD": b"ref: refs/heads/main\n",
            ".gitattributes": b"*.bin lfs\n",
            "nested/.gitignore": b"*.tmp\n",
            "a.txt": b"a",
            "a/b": b"b",
        }
    )


def test_model_signing_accepts_aiprov_bundle_for_a_directory(tmp_path: Path, git_model: Path, keys: Keys) -> None:
    signature = tmp_path / "aiprov.sig"
    aiprov_sign(git_model, signature, keys)
    done = ms_verify(git_model, signature, keys)
    assert done.returncode == 0, done.stderr


def test_model_signing_accepts_aiprov_bundle_for_a_single_file(
    tmp_path: Path, make_model: Callable[..., Path], keys: Keys
) -> None:
    model = make_model({"model.onnx": b"\x08\x07onnx"}) / "model.onnx"
    signature = tmp_path / "aiprov.sig"
    aiprov_sign(model, signature, keys)
    assert payload_of(signature.read_bytes())["predicate"]["resources"][0]["name"] == "."
    done = ms_verify(model, signature, keys)
    assert done.returncode == 0, done.stderr


def test_model_signing_accepts_aiprov_bundle_stored_inside_the_model(
    tmp_path: Path, make_model: Callable[..., Path], keys: Keys
) -> None:
    model = make_model()
    bundle = sign_manifest(manifest_of(model), model.name, keys.private, ignore_paths=["model.sig"])
    (model / "model.sig").write_bytes(bundle)
    # Verify a copy kept outside, so only the statement's ignore_paths (not the CLI's own --signature
    # exclusion) keeps model.sig out of model_signing's view of the model.
    outside = tmp_path / "copy.sig"
    outside.write_bytes(bundle)
    done = ms_verify(model, outside, keys)
    assert done.returncode == 0, done.stderr


def test_aiprov_statement_has_the_subject_digest_model_signing_computes(
    tmp_path: Path, git_model: Path, keys: Keys
) -> None:
    theirs = payload_of(ms_sign(git_model, tmp_path / "ms.sig", keys))
    ours = attestation.build_statement(manifest_of(git_model), git_model.name)
    assert ours["subject"] == theirs["subject"]
    assert ours["predicate"]["resources"] == [
        {"name": r["name"], "algorithm": r["algorithm"], "digest": r["digest"]}
        for r in theirs["predicate"]["resources"]
    ]
    their_serialization = dict(theirs["predicate"]["serialization"])
    their_serialization["ignore_paths"] = sorted(their_serialization["ignore_paths"])
    assert ours["predicate"]["serialization"] == their_serialization


def test_aiprov_accepts_model_signing_bundle_for_a_directory(tmp_path: Path, git_model: Path, keys: Keys) -> None:
    bundle = ms_sign(git_model, tmp_path / "ms.sig", keys)
    claim = verify_bundle(bundle, manifest_of(git_model), keys.public)
    assert claim.name == git_model.name
    assert ".git/HEAD" not in dict(claim.files)


def test_aiprov_accepts_model_signing_bundle_for_a_single_file(
    tmp_path: Path, make_model: Callable[..., Path], keys: Keys
) -> None:
    model = make_model({"model.onnx": b"\x08\x07onnx"}) / "model.onnx"
    bundle = ms_sign(model, tmp_path / "ms.sig", keys)
    claim = verify_bundle(bundle, manifest_of(model), keys.public)
    assert claim.single_file
    assert claim.files == ((("model.onnx", Digest(hashlib.sha256(b"\x08\x07onnx").hexdigest()))),)


def test_aiprov_accepts_model_signing_bundle_stored_inside_the_model_only_without_it(
    make_model: Callable[..., Path], keys: Keys
) -> None:
    model = make_model()
    manifest = manifest_of(model)
    bundle = ms_sign(model, model / "model.sig", keys)
    verify_bundle(bundle, manifest, keys.public)
    with pytest.raises(VerificationError, match=r"model\.sig.*ignore_paths"):
        verify_bundle(bundle, manifest_of(model), keys.public)


def test_model_signing_accepts_bundle_after_model_is_moved(
    tmp_path: Path, make_model: Callable[..., Path], keys: Keys
) -> None:
    # The model name is informative for both tools: renaming the directory keeps the signature valid.
    model = make_model()
    signature = tmp_path / "aiprov.sig"
    aiprov_sign(model, signature, keys)
    moved = model.rename(model.with_name("renamed"))
    assert ms_verify(moved, signature, keys).returncode == 0
    verify_bundle(signature.read_bytes(), manifest_of(moved), keys.public)


def change_one_byte(model: Path) -> str:
    flip_first_byte(model / "weights/b.bin")
    return "weights/b.bin"


def add_a_file(model: Path) -> str:
    (model / "weights/evil.pkl").write_bytes(b"\x80\x04.")
    return "weights/evil.pkl"


def remove_a_file(model: Path) -> str:
    (model / "config.json").unlink()
    return "config.json"


@pytest.mark.parametrize("tamper", [change_one_byte, add_a_file, remove_a_file])
def test_both_tools_refuse_a_tampered_directory(
    tmp_path: Path, make_model: Callable[..., Path], keys: Keys, tamper: Callable[[Path], str]
) -> None:
    model = make_model()
    ours, theirs = tmp_path / "aiprov.sig", tmp_path / "ms.sig"
    aiprov_sign(model, ours, keys)
    ms_sign(model, theirs, keys)

    changed = tamper(model)

    done = ms_verify(model, ours, keys)
    assert done.returncode != 0
    assert changed in done.stderr
    with pytest.raises(VerificationError, match=changed):
        verify_bundle(theirs.read_bytes(), manifest_of(model), keys.public)


def test_both_tools_refuse_a_tampered_single_file(tmp_path: Path, make_model: Callable[..., Path], keys: Keys) -> None:
    model = make_model({"model.onnx": b"\x08\x07onnx"}) / "model.onnx"
    ours, theirs = tmp_path / "aiprov.sig", tmp_path / "ms.sig"
    aiprov_sign(model, ours, keys)
    ms_sign(model, theirs, keys)

    flip_first_byte(model)

    assert ms_verify(model, ours, keys).returncode != 0
    with pytest.raises(VerificationError, match=r"model\.onnx changed"):
        verify_bundle(theirs.read_bytes(), manifest_of(model), keys.public)


def test_model_signing_refuses_aiprov_bundle_with_the_wrong_key(
    tmp_path: Path, make_model: Callable[..., Path], keys: Keys, make_keys: Callable[[str], Keys]
) -> None:
    model = make_model()
    signature = tmp_path / "aiprov.sig"
    aiprov_sign(model, signature, keys)
    done = ms_verify(model, signature, make_keys("other"))
    assert done.returncode != 0
    assert "Key mismatch" in done.stderr
