"""Path and query parameters shared by the routes, built from the core's rules (`core/names.py`).

FastAPI checks them before a route runs, so a malformed owner, name, alias or version number is a 422 problem
naming the parameter, and the OpenAPI schema states the rule.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from aiprov.core.names import ALIAS_PATTERN, MAX_VERSION, NAME_PATTERN, OWNER_PATTERN

Owner = Annotated[str, Path(pattern=f"^{OWNER_PATTERN}$", description="The namespace: a user name.")]
Name = Annotated[str, Path(pattern=f"^{NAME_PATTERN}$")]
Alias = Annotated[str, Path(pattern=f"^{ALIAS_PATTERN}$")]
Number = Annotated[int, Path(ge=1, le=MAX_VERSION, description="Version number, from 1.")]
Selector = Annotated[str, Path(max_length=64, description="A version number (digits 0-9) or an alias.")]
SelectorQuery = Annotated[str | None, Query(max_length=64, description="Number or alias; default the latest.")]
