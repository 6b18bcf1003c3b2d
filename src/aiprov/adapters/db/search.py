r"""Search over models (`ls --search`, the web's search box), answered from a trigram index.

A case-insensitive substring over name, description and tags. The semantics are the scan's,
`lower(field) LIKE '%q%'` on each field (`*` and `?` in `q` are wildcards, `%`, `_` and `\` literal), and the
index only narrows which rows that exact predicate is evaluated on:

- SQLite: the FTS5 table `model_search` (`tokenize='trigram'`, one row per model, rowid = the model's id, kept in
  step with `models` and `model_tags` by triggers, see migration 0006). Every literal run of 3+ characters of the
  query must appear in the row (a trigram phrase, case-folded by the tokenizer), which every true match satisfies;
  the scan's predicate then decides. A query with no such run (1-2 characters, or only wildcards) is a scan.
- PostgreSQL: GIN `gin_trgm_ops` indexes (pg_trgm) on `lower(full_name)`, `lower(description)` and
  `lower(model_tags.tag)`; the same predicate, as a union of the three, so each side uses its index. A query with
  no literal run of 3+ characters is the scan there too (trigrams cannot narrow it; the union would cost more).

Objects outside the ORM's metadata are named here, so Alembic's comparison leaves them alone (`include_name`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, column, exists, func, or_, select, text, union

from aiprov.adapters.db.schema import ModelRow, TagRow

FTS_TABLE = "model_search"
"""SQLite's FTS5 trigram table, and the prefix of its shadow tables and triggers."""
TRGM_INDEXES = ("ix_models_full_name_trgm", "ix_models_description_trgm", "ix_model_tags_tag_trgm")
"""PostgreSQL's pg_trgm GIN indexes (expression indexes, so not declared on the ORM's tables)."""
MIN_RUN = 3
"""The shortest literal run a trigram index can look up."""


def include_name(name: str | None, type_: str, _parents: Any = None) -> bool:
    """Alembic's `include_name`: everything but the search index's own objects."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(FTS_TABLE)
    if type_ == "index":
        return name not in TRGM_INDEXES
    return True


def glob_to_like(glob: str) -> str:
    r"""A LIKE pattern (escape `\`) for a glob: `*` is any run, `?` one character, everything else literal."""
    out = []
    for ch in glob:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def literal_runs(query: str) -> list[str]:
    """The query's literal runs (between wildcards), lower-cased, of at least MIN_RUN characters."""
    runs: list[str] = []
    run: list[str] = []
    for ch in query.lower():
        if ch in "*?":
            runs.append("".join(run))
            run = []
        else:
            run.append(ch)
    runs.append("".join(run))
    return [r for r in runs if len(r) >= MIN_RUN]


def fts_query(runs: list[str]) -> str:
    """An FTS5 query that every row holding all of `runs` matches: each a quoted phrase, ANDed."""
    return " AND ".join('"' + r.replace('"', '""') + '"' for r in runs)


def matches(query: str, dialect: str, *, indexed: bool = True) -> ColumnElement[bool]:
    """The condition on `ModelRow` of a search for `query`; `indexed=False` is the plain scan (same rows)."""
    pattern = "%" + glob_to_like(query.lower()) + "%"
    name = func.lower(ModelRow.full_name).like(pattern, escape="\\")
    description = func.lower(ModelRow.description).like(pattern, escape="\\")
    tag = func.lower(TagRow.tag).like(pattern, escape="\\")
    runs = literal_runs(query)
    if not indexed or not runs or dialect not in ("sqlite", "postgresql"):
        return or_(name, description, ModelRow.id.in_(select(TagRow.model_id).where(tag)))
    if dialect == "postgresql":
        return ModelRow.id.in_(
            union(
                select(ModelRow.id).where(name),
                select(ModelRow.id).where(description),
                select(TagRow.model_id).where(tag),
            )
        )
    tagged = exists().where(TagRow.model_id == ModelRow.id, tag)
    candidates = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :fts").bindparams(fts=fts_query(runs))
    return and_(ModelRow.id.in_(candidates.columns(column("rowid", Integer))), or_(name, description, tagged))
