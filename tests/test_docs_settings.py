"""docs/configuration.md names every setting config.py reads, and no setting that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from aiprov.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CLI_ONLY = {"AIPROV_SERVER", "AIPROV_TOKEN"}
"""Read by the CLI's `--server`/`--token` options (envvar), not by Settings."""


def test_every_setting_is_documented_with_a_default_and_a_meaning() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `AIPROV_")]
    for field in Settings.model_fields:
        name = f"AIPROV_{field.upper()}"
        row = next((r for r in rows if f"`{name}`" in r), None)
        assert row is not None, f"{name} is not in docs/configuration.md"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 and all(cells), row


def test_the_documented_settings_all_exist() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`(AIPROV_[A-Z0-9_]+)`", doc))
    known = {f"AIPROV_{field.upper()}" for field in Settings.model_fields} | CLI_ONLY
    assert documented <= known, sorted(documented - known)
