"""A model card: the version's README.md as Markdown, rendered to HTML that cannot run anything.

markdown-it renders with raw HTML switched off (any tag in the README is shown as text), then nh3 (the Rust
`ammonia` sanitiser) keeps only an allow-list of tags and attributes: no script, no event handler, no style, and
links only with http, https or mailto URLs, so a `javascript:` link is dropped; images are dropped too.
"""

from __future__ import annotations

from collections.abc import Iterable

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from aiprov.core.manifest import ManifestEntry

MAX_CARD_BYTES = 256 * 1024
"""A longer README is cut at this many bytes before rendering (a card is read, not archived)."""

CARD_NAMES = ("readme.md", "model_card.md", "modelcard.md")
_URL_SCHEMES = {"http", "https", "mailto"}
_TAGS = set(nh3.ALLOWED_TAGS) - {"img"}
"""No images: a card's image would be fetched from wherever it points, and pages request nothing off the hub."""

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def card_entry(entries: Iterable[ManifestEntry]) -> ManifestEntry | None:
    """The manifest entry holding the model card: a top-level README.md (any case), if there is one."""
    by_name = {e.path.lower(): e for e in entries if "/" not in e.path}
    return next((by_name[n] for n in CARD_NAMES if n in by_name), None)


def render_card(data: bytes) -> Markup:
    """The card's safe HTML. Invalid UTF-8 is replaced, not refused: the card is shown, never trusted."""
    text = data[:MAX_CARD_BYTES].decode("utf-8", errors="replace")
    html = _markdown.render(text)
    clean = nh3.clean(html, tags=_TAGS, url_schemes=_URL_SCHEMES, link_rel="nofollow noopener noreferrer")
    return Markup(clean)  # safe: sanitised by nh3 just above
