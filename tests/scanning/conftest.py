"""The scanner tests import their corpus builder (`scan_corpus.py`) from this directory."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
