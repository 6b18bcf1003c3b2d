"""Event.encoded: the entry and the details' JSON from one encoding of the details, byte for byte entry()'s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from aiprov.core.canonical import canonical_json
from aiprov.core.events import Event

TRICKY = st.sampled_from(['"details":null', 'x","details":null,"y', "\\", '"', "é\u2028", "null", "details"])
TEXT = st.one_of(st.text(max_size=30), TRICKY)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    actor=TEXT,
    action=TEXT,
    subject=TEXT,
    model=st.one_of(st.none(), TEXT),
    details=st.dictionaries(TEXT, VALUES, max_size=6),
    seconds=st.integers(0, 10**9),
)
def test_encoded_is_the_entry_and_the_details_json(
    actor: str, action: str, subject: str, model: str | None, details: dict[str, object], seconds: int
) -> None:
    event = Event(
        time=datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=seconds % 999_999),
        actor=actor,
        action=action,
        subject=subject,
        model=model,
        details=details,
    )
    entry, details_json = event.encoded()
    assert entry == event.entry()
    assert details_json == canonical_json(details)
