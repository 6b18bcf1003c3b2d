import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiprov.core.canonical import canonical_json
from aiprov.core.digest import Digest
from aiprov.core.manifest import Manifest, ManifestEntry
from aiprov.core.names import ModelName, Ref
from aiprov.errors import InvalidInput


def entry(path: str, data: bytes) -> ManifestEntry:
    return ManifestEntry(path, len(data), Digest.of(data))


def test_digest_round_trips_and_refuses_malformed_values() -> None:
    d = Digest.of(b"abc")
    assert str(d) == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert Digest.parse(str(d).upper().replace("SHA256", "sha256")) == d
    for bad in ("sha256:xyz", "md5:" + "0" * 32, "0" * 64, "sha256:" + "0" * 63):
        with pytest.raises(InvalidInput):
            Digest.parse(bad)


def test_manifest_digest_is_sha256_of_canonical_json() -> None:
    m = Manifest.build([entry("b.bin", b"2"), entry("a/x.txt", b"")])
    assert [e.path for e in m.entries] == ["a/x.txt", "b.bin"]
    expected = canonical_json(
        {
            "type": "https://aiprov.dev/manifest/v1",
            "files": [
                {"path": "a/x.txt", "size": 0, "sha256": hashlib.sha256(b"").hexdigest()},
                {"path": "b.bin", "size": 1, "sha256": hashlib.sha256(b"2").hexdigest()},
            ],
        }
    )
    assert m.canonical() == expected
    assert m.digest == Digest.of(expected)
    assert Manifest.from_json(m.to_json()) == m


def test_canonical_json_sorts_keys_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    with pytest.raises(InvalidInput):
        canonical_json({"x": float("nan")})


@pytest.mark.parametrize("path", ["", "/abs", "a/../b", "./a", "a//b", "a\\b", "a/"])
def test_manifest_refuses_unclean_paths(path: str) -> None:
    with pytest.raises(InvalidInput):
        ManifestEntry(path, 0, Digest.of(b""))


def test_manifest_refuses_duplicates_and_file_directory_clash() -> None:
    with pytest.raises(InvalidInput, match="duplicate"):
        Manifest.build([entry("a", b"1"), entry("a", b"2")])
    with pytest.raises(InvalidInput, match="both a file and a directory"):
        Manifest.build([entry("a", b"1"), entry("a/b", b"2")])
    with pytest.raises(InvalidInput, match="at least one file"):
        Manifest.build([])


@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}", fullmatch=True),
        st.binary(max_size=64),
        min_size=1,
        max_size=8,
    )
)
def test_manifest_digest_ignores_entry_order_but_not_content(files: dict[str, bytes]) -> None:
    paths = sorted(files)
    if any(b.startswith(a + "/") for a in paths for b in paths):
        return
    entries = [entry(p, d) for p, d in files.items()]
    m = Manifest.build(entries)
    assert Manifest.build(reversed(entries)).digest == m.digest
    first = entries[0]
    changed = [entry(first.path, files[first.path] + b"!"), *entries[1:]]
    assert Manifest.build(changed).digest != m.digest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice/iris", Ref(model=ModelName("alice", "iris"))),
        ("alice/iris@3", Ref(model=ModelName("alice", "iris"), number=3)),
        ("alice/iris@prod", Ref(model=ModelName("alice", "iris"), alias="prod")),
        ("sha256:ABCD", Ref(digest_prefix="sha256:abcd")),
    ],
)
def test_refs_parse(text: str, expected: Ref) -> None:
    assert Ref.parse(text) == expected


@pytest.mark.parametrize("text", ["iris", "Alice/iris", "a/b@0", "a/b@-1", "a/b@", "sha256:ab", "/x", "a/b/c"])
def test_malformed_refs_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        Ref.parse(text)
