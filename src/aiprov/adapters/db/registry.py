"""The registry on SQLAlchemy: one `SqlRegistryUnit` per transaction, returning plain records.

Everything a command changes (model, version, alias) and the event that records it are written in one
transaction, so the events table never disagrees with the state it describes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Select, case, event, func, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker

from aiprov.adapters.db.accounts import AccountRows
from aiprov.adapters.db.blocks import BlockRows
from aiprov.adapters.db.evaluations import EvaluationRows
from aiprov.adapters.db.events import EventRows, insert_events
from aiprov.adapters.db.hf_lfs import HfLfsRows
from aiprov.adapters.db.hf_xet import HfXetRows
from aiprov.adapters.db.jobs import JobRows
from aiprov.adapters.db.logrows import LogRows
from aiprov.adapters.db.schema import (
    AliasRow,
    DatasetRow,
    EvaluationMetricRow,
    EvaluationRow,
    EventRow,
    ModelRow,
    ParentRow,
    TagRow,
    VersionFileRow,
    VersionRow,
)
from aiprov.adapters.db.search import glob_to_like, matches
from aiprov.adapters.db.signatures import SignatureRows
from aiprov.adapters.db.times import utc
from aiprov.adapters.db.unit import row_of
from aiprov.core.events import Event
from aiprov.core.manifest import Manifest
from aiprov.core.names import ModelName, Ref, is_owner
from aiprov.errors import AiprovError, BackendError, Conflict, InvalidInput, NotFound
from aiprov.ports import ModelHandle, VersionHandle
from aiprov.records import (
    LOWER_IS_BETTER,
    METRIC_SORT,
    MODEL_SORTS,
    IpfsCids,
    Lineage,
    ModelFilter,
    ModelRecord,
    VersionRecord,
    VersionSummary,
)

WRITE = "aiprov_write"
"""Execution option of the engine that write transactions use."""


def _serialize_writers(engine: Engine) -> None:
    """One writer at a time: a write transaction takes the database's write lock when it begins.

    Every write appends to the transparency log, whose appends must be serialized anyway; taking the lock at
    the start rather than at the append also serializes what the transaction read before (the next version
    number, whether a model exists), so concurrent pushes never race. Readers are not blocked.
    SQLite: BEGIN IMMEDIATE (pysqlite would start DEFERRED transactions, and two writers that both read first
    deadlock on the lock upgrade). PostgreSQL: the single `log_state` row is locked FOR UPDATE.
    """
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_sqlite(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    else:

        @event.listens_for(engine, "begin")
        def _begin_locked(conn: Any) -> None:
            if conn.get_execution_options().get(WRITE):
                conn.exec_driver_sql("SELECT id FROM log_state WHERE id = 1 FOR UPDATE")


def database_error(e: SQLAlchemyError) -> BackendError:
    """The one-line error of a failed database call: the driver's own message for an operational error."""
    return BackendError(f"database error: {e.orig if isinstance(e, OperationalError) else e}")


class _Rows:
    """The rows of one statement, read the way `log` reads a result."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def one(self) -> Any:
        if len(self.rows) != 1:
            raise BackendError(f"database error: expected one row, got {len(self.rows)}")
        return self.rows[0]

    def scalar_one_or_none(self) -> Any:
        return self.rows[0][0] if self.rows else None


class DriverConnection:
    """`log.DriverSql` straight on a DBAPI connection: statements go to the driver with nothing in between.

    For `EventWriter` on SQLite, whose batches are a handful of small statements: SQLAlchemy's cost per statement
    (execution context, result wrapping, events) was a third of such a batch's CPU. Transactions are the
    caller's (`BEGIN IMMEDIATE` … `COMMIT`, as `_serialize_writers` begins SQLite's write units).
    """

    def __init__(self, dbapi_connection: Any, dialect: Dialect) -> None:
        self.dbapi = dbapi_connection
        self.dialect = dialect

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> _Rows:
        if isinstance(parameters, list):  # as SQLAlchemy does: a list of parameter sets is an executemany
            self.dbapi.executemany(statement, parameters)
            return _Rows([])
        return _Rows(self.dbapi.execute(statement, parameters or ()).fetchall())


class EventWriter:
    """Appends batches of events, each in a write transaction of its own, over one connection kept open.

    For a single thread that appends many small batches (the usage recorder): a batch then costs no session, no
    pool checkout and no reset, about a third of a one-event write unit's CPU. No checkpoint is signed here
    (`SqlRegistry.unit(write=True, checkpoint=True)` does that); the caller signs one when it is due. After a
    database error the connection is dropped and the next batch opens a new one.
    """

    def __init__(self, engine: Engine, *, busy_timeout_ms: int | None = None) -> None:
        self._engine = engine
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: Connection | None = None
        self._driver: DriverConnection | None = None  # SQLite: the same connection, without SQLAlchemy
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    def append(self, events: Sequence[Event]) -> int:
        """Commit `events` (one log append, one insert); the first one's leaf index. Raises as `SqlRegistry.unit`."""
        try:
            if self._conn is None:
                self._connect()
            assert self._conn is not None
            if self._driver is None:
                with self._conn.begin():
                    return insert_events(self._conn, events)
            return self._append_on_driver(self._driver, events)
        except AiprovError:
            raise
        except SQLAlchemyError as e:
            self.close()
            raise database_error(e) from e
        except self._driver_error as e:
            self.close()
            raise BackendError(f"database error: {e}") from e

    @staticmethod
    def _append_on_driver(driver: DriverConnection, events: Sequence[Event]) -> int:
        driver.dbapi.execute("BEGIN IMMEDIATE")
        try:
            first = insert_events(driver, events)
            driver.dbapi.execute("COMMIT")
        except BaseException:
            driver.dbapi.execute("ROLLBACK")
            raise
        return first

    def _connect(self) -> None:
        conn = self._engine.connect()
        if conn.dialect.name == "sqlite":
            dbapi = conn.connection.dbapi_connection
            if self._busy_timeout_ms is not None:
                dbapi.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")  # type: ignore[union-attr]
            conn.detach()  # this writer's alone (its own busy timeout), closed for good with it
            self._driver = DriverConnection(dbapi, conn.dialect)
        self._conn = conn

    def close(self) -> None:
        """Close the connection (the next `append` opens another). Idempotent."""
        conn, self._conn = self._conn, None
        self._driver = None
        if conn is not None:
            with suppress(SQLAlchemyError):
                conn.close()


class SqlRegistry:
    """Factory of transactions over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.before_commit: Callable[[SqlRegistryUnit], None] | None = None
        """Called at the end of a write transaction that appended log entries, inside it: a local hub signs a
        checkpoint there, so every committed state has a checkpoint that covers it."""
        _serialize_writers(engine)
        self._write_engine = engine.execution_options(**{WRITE: True})
        self._readers = sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._writers = sessionmaker(self._write_engine, expire_on_commit=False, autoflush=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def event_writer(self, *, busy_timeout_ms: int | None = None) -> EventWriter:
        """An `EventWriter` over this registry's write connections (for one thread's use).

        `busy_timeout_ms`: on SQLite, how long it waits for another writer's lock (default: the engine's, 30 s).
        """
        return EventWriter(self._write_engine, busy_timeout_ms=busy_timeout_ms)

    @contextmanager
    def unit(self, write: bool = False, *, checkpoint: bool | None = None) -> Iterator[SqlRegistryUnit]:
        """A transaction: committed when the block ends, rolled back (nothing written) if it raises.

        Only a `write` unit may change anything; write units run one at a time. `checkpoint` says whether
        `before_commit` runs: by default when the unit appended to the log; False skips it (the usage recorder
        signs at most once a second: checkpoints are signed on read too, so none lags); True runs it anyway.
        """
        try:
            with (self._writers if write else self._readers).begin() as session:
                unit = SqlRegistryUnit(session, write)
                yield unit
                hook = bool(unit.appended) if checkpoint is None else checkpoint and write
                if hook and self.before_commit is not None:
                    self.before_commit(unit)
        except AiprovError:
            raise
        except SQLAlchemyError as e:
            raise database_error(e) from e


class SqlRegistryUnit(
    AccountRows, BlockRows, SignatureRows, EventRows, LogRows, EvaluationRows, HfLfsRows, HfXetRows, JobRows
):
    """The registry's reads and writes within one transaction.

    Models and versions are here, the other aggregates in their own modules (`AccountRows`, `BlockRows`,
    `SignatureRows`, `EventRows`, `LogRows`, `EvaluationRows`, `HfLfsRows`, `HfXetRows`, `JobRows`). What leaves
    `adapters/db` is a record, or a model or version row handed back in as a handle (`resolve`); services read a
    handle only through `ports.ModelHandle` and `ports.VersionHandle`. `ports.RegistryUnit` is the interface this
    class implements.
    """

    search_index = True
    """Whether searches use the trigram index (False: the plain scan, which finds the same models)."""

    def __init__(self, session: Session, write: bool = False) -> None:
        self.s = session
        self.write = write
        self.appended = 0
        """How many log entries this transaction appended."""

    # models -----------------------------------------------------------------------------------------------

    def model_row(self, name: ModelName) -> ModelRow | None:
        return self.s.scalars(select(ModelRow).where(ModelRow.full_name == str(name))).one_or_none()

    def require_model(self, name: ModelName) -> ModelRow:
        row = self.model_row(name)
        if row is None:
            raise NotFound(f"no model named {name}", hint="`aiprov ls` lists the models")
        return row

    def upsert_model(
        self,
        name: ModelName,
        description: str | None,
        license: str | None,
        tags: Sequence[str],
        now: datetime,
    ) -> ModelRow:
        """Create the model, or update the metadata that was given (None leaves a field as it is)."""
        row = self.model_row(name)
        if row is None:
            row = ModelRow(
                owner=name.owner,
                name=name.name,
                full_name=str(name),
                description=description or "",
                license=license,
                created_at=now,
            )
            self.s.add(row)
        else:
            if description is not None:
                row.description = description
            if license is not None:
                row.license = license
        if tags:  # loading the tags costs a query; most pushes add none
            have = {t.tag for t in row.tags}
            row.tags.extend(TagRow(tag=tag) for tag in dict.fromkeys(tags) if tag not in have)
        self.s.flush()
        return row

    # versions ---------------------------------------------------------------------------------------------

    def version_by_digest(self, model: ModelHandle, digest: str) -> VersionRow | None:
        return self.s.scalars(
            select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.digest == digest)
        ).one_or_none()

    def versions_by_digest_prefix(self, model: ModelHandle, prefix: str, limit: int = 2) -> list[VersionRow]:
        """Up to `limit` versions of `model` whose digest starts with `prefix` (`sha256:` and hex digits)."""
        query = select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.digest.like(prefix + "%"))
        return list(self.s.scalars(query.order_by(VersionRow.number).limit(limit)))

    def add_version(
        self,
        model: ModelHandle,
        manifest: Manifest,
        author: str,
        lineage: Lineage,
        now: datetime,
        single_file: bool,
        cids: IpfsCids | None = None,
        formats: Mapping[str, str] | None = None,
    ) -> VersionRow:
        number = (self.s.scalar(select(func.max(VersionRow.number)).where(VersionRow.model_id == model.id)) or 0) + 1
        row = VersionRow(
            model_id=model.id,
            number=number,
            digest=str(manifest.digest),
            manifest=manifest.canonical().decode(),
            total_size=manifest.total_size,
            file_count=len(manifest.entries),
            single_file=single_file,
            author=author,
            created_at=now,
            code_revision=lineage.code_revision,
            lineage=lineage.to_json(),
            cid_v0=cids.v0 if cids else None,
            cid_v1=cids.v1 if cids else None,
        )
        self.s.add(row)
        try:
            self.s.flush()
        except SqlIntegrityError as e:
            raise Conflict(f"{model.full_name} changed while pushing; try again") from e
        files = cids.files if cids else {}
        self.s.add_all(
            VersionFileRow(
                version_id=row.id,
                path=e.path,
                size=e.size,
                sha256=e.sha256.hex,
                cid_v0=files[e.path][0] if e.path in files else None,
                cid_v1=files[e.path][1] if e.path in files else None,
                format=(formats or {}).get(e.path),
            )
            for e in manifest.entries
        )
        self.s.add_all(ParentRow(version_id=row.id, parent_digest=p) for p in dict.fromkeys(lineage.parents))
        return row

    def blob_in_use(self, sha256_hex: str) -> bool:
        """Whether a registered version or dataset holds the blob (uploaded but uncommitted blobs are not)."""
        in_version = select(VersionFileRow.version_id).where(VersionFileRow.sha256 == sha256_hex).limit(1)
        in_dataset = select(DatasetRow.id).where(DatasetRow.digest == f"sha256:{sha256_hex}").limit(1)
        return self.s.scalar(in_version) is not None or self.s.scalar(in_dataset) is not None

    def file_formats(self, version: VersionHandle) -> dict[str, str | None]:
        rows = self.s.execute(
            select(VersionFileRow.path, VersionFileRow.format).where(VersionFileRow.version_id == version.id)
        )
        return {path: fmt for path, fmt in rows}

    def resolve(self, ref: Ref) -> tuple[ModelRow, VersionRow]:
        """The version a reference names. Raises NotFound, or InvalidInput for an ambiguous digest prefix."""
        if ref.digest_prefix is not None:
            return self._resolve_digest(ref.digest_prefix)
        assert ref.model is not None
        model = self.require_model(ref.model)
        query = select(VersionRow).where(VersionRow.model_id == model.id)
        if ref.number is not None:
            version = self.s.scalars(query.where(VersionRow.number == ref.number)).one_or_none()
            missing = f"{ref.model} has no version {ref.number}"
        elif ref.alias is not None:
            version = self.s.scalars(
                query.join(AliasRow, AliasRow.version_id == VersionRow.id).where(
                    AliasRow.model_id == model.id, AliasRow.alias == ref.alias
                )
            ).one_or_none()
            missing = f"{ref.model} has no alias {ref.alias!r}"
        else:
            version = self.s.scalars(query.order_by(VersionRow.number.desc()).limit(1)).one_or_none()
            missing = f"{ref.model} has no versions"
        if version is None:
            raise NotFound(missing)
        return model, version

    def _resolve_digest(self, prefix: str) -> tuple[ModelRow, VersionRow]:
        rows = self.s.execute(
            select(ModelRow, VersionRow)
            .join(VersionRow, VersionRow.model_id == ModelRow.id)
            .where(VersionRow.digest.like(prefix + "%"))
            .order_by(VersionRow.id)
            .limit(50)
        ).all()
        if not rows:
            raise NotFound(f"no version has a digest starting with {prefix}")
        if len({v.digest for _, v in rows}) > 1:
            raise InvalidInput(f"digest prefix {prefix} is ambiguous", hint="give more hex digits")
        model, version = rows[0]  # the same bytes under several names: the first registration
        return model, version

    def set_alias(self, model: ModelHandle, alias: str, version: VersionHandle) -> int | None:
        """Point `alias` at `version`; return the version number it pointed at before, if any."""
        row = self.s.get(AliasRow, (model.id, alias))
        previous = None
        if row is None:
            self.s.add(AliasRow(model_id=model.id, alias=alias, version_id=version.id))
        else:
            previous = self.s.get_one(VersionRow, row.version_id).number
            row.version_id = version.id
        self.s.flush()
        return previous

    def aliases_of(self, version_ids: Sequence[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        if version_ids:
            for alias in self.s.scalars(
                select(AliasRow).where(AliasRow.version_id.in_(version_ids)).order_by(AliasRow.alias)
            ):
                out.setdefault(alias.version_id, []).append(alias.alias)
        return out

    def version_record(self, model: ModelHandle, version: VersionHandle) -> VersionRecord:
        aliases = self.aliases_of([version.id]).get(version.id, [])
        return _version_record(
            model, row_of(version, VersionRow), aliases, self._file_cids([version.id]).get(version.id, {})
        )

    def versions(self, model: ModelHandle, newest: int | None = None) -> list[VersionRecord]:
        """The model's versions, oldest first; with `newest`, only that many of the latest."""
        query = select(VersionRow).where(VersionRow.model_id == model.id).order_by(VersionRow.number.desc())
        rows = list(reversed(list(self.s.scalars(query if newest is None else query.limit(newest)))))
        ids = [r.id for r in rows]
        aliases, cids = self.aliases_of(ids), self._file_cids(ids)
        return [_version_record(model, r, aliases.get(r.id, []), cids.get(r.id, {})) for r in rows]

    def children(self, digest: str, limit: int = 100) -> list[tuple[str, int]]:
        """(model, version number) of the versions that name `digest` as a parent, oldest first."""
        query = (
            select(ModelRow.full_name, VersionRow.number)
            .join(VersionRow, VersionRow.model_id == ModelRow.id)
            .join(ParentRow, ParentRow.version_id == VersionRow.id)
            .where(ParentRow.parent_digest == digest)
            .order_by(VersionRow.id)
            .limit(limit)
        )
        return [(name, number) for name, number in self.s.execute(query)]

    def model_record(self, model: ModelHandle) -> ModelRecord:
        return self._model_records(select(ModelRow.id).where(ModelRow.id == model.id).scalar_subquery())[0]

    def list_models(self, f: ModelFilter, limit: int | None = None) -> list[ModelRecord]:
        """Models matching every given filter, by name, each with a summary of its latest version."""
        return self._model_records(self._matching(f).scalar_subquery(), limit)

    def page_models(
        self, f: ModelFilter, sort: str, offset: int, limit: int, *, scores: Mapping[str, int] | None = None
    ) -> tuple[int, list[ModelRecord]]:
        """How many models match `f`, and those from `offset` on (at most `limit`) in the order `sort` names.

        The page's ids are read first, so the records' joins run over one page, not the whole registry.
        `scores`: each account's reputation, for `sort="reputation"` (accounts not in it count 0).
        Raises InvalidInput for a sort not in MODEL_SORTS nor `metric:NAME`.
        """
        if sort not in MODEL_SORTS and not sort.startswith(METRIC_SORT):
            raise InvalidInput(f"cannot sort models by {sort!r}", hint=f"one of {', '.join(MODEL_SORTS)}")
        matching = self._matching(f)
        total = self.s.scalar(select(func.count()).select_from(matching.subquery())) or 0
        m = ModelRow
        if sort == "updated":
            ids = self._recently_updated(matching if f != ModelFilter() else None, offset, limit)
        elif sort in ("name", "versions"):
            count = select(func.count()).where(VersionRow.model_id == m.id).scalar_subquery()
            order = [m.full_name] if sort == "name" else [count.desc(), m.full_name]
            ids = list(self.s.scalars(matching.order_by(*order).offset(offset).limit(limit)))
        else:
            head, tail = self._ranked(sort, matching if f != ModelFilter() else None, scores or {})
            ids = self._ranked_page(matching, head, tail, total, offset, limit)
        records = {r.full_name: r for r in self._model_records(ids)} if ids else {}
        names = dict(self.s.execute(select(m.id, m.full_name).where(m.id.in_(ids))).all()) if ids else {}
        return total, [records[names[i]] for i in ids]

    def _ranked(
        self, sort: str, matching: Select[Any] | None, scores: Mapping[str, int]
    ) -> tuple[Select[Any, Any] | None, Select[Any, Any] | None]:
        """What `sort` ranks ahead of the other models (and behind them), as queries of (model id, key) in order.

        Every other matching model sits between the two, by name. `matching`: None for every model.
        """
        m, v = ModelRow, VersionRow
        newer = aliased(VersionRow)
        latest = ~select(newer.id).where(newer.model_id == v.model_id, newer.number > v.number).exists()
        among = [] if matching is None else [m.id.in_(matching)]
        if sort == "downloads":
            n = func.count().label("n")
            head: Select[Any, Any] = (
                select(m.id, n)
                .join(EventRow, EventRow.model == m.full_name)
                .where(EventRow.action == "download", *among)
                .group_by(m.id, m.full_name)
                .order_by(n.desc(), m.full_name)
            )
            return head, None
        if sort == "reputation":

            def by_author(accounts: list[str]) -> Select[Any, Any] | None:
                if not accounts:
                    return None
                score = case({a: scores[a] for a in accounts}, value=v.author, else_=0)
                return (
                    select(m.id, score)
                    .join(v, v.model_id == m.id)
                    .where(v.author.in_(accounts), latest, *among)
                    .order_by(score.desc(), m.full_name)
                )

            return by_author([a for a, n in scores.items() if n > 0]), by_author(
                [a for a, n in scores.items() if n < 0]
            )
        metric = sort[len(METRIC_SORT) :]
        best = (func.min if metric in LOWER_IS_BETTER else func.max)(EvaluationMetricRow.value).label("best")
        ranked: Select[Any, Any] = (
            select(m.id, best)
            .join(v, v.model_id == m.id)
            .join(EvaluationRow, EvaluationRow.version_id == v.id)
            .join(EvaluationMetricRow, EvaluationMetricRow.evaluation_id == EvaluationRow.id)
            .where(EvaluationMetricRow.name == metric, latest, *among)
            .group_by(m.id, m.full_name)
            .order_by(best.asc() if metric in LOWER_IS_BETTER else best.desc(), m.full_name)
        )
        return ranked, None

    def _ranked_page(
        self,
        matching: Select[Any],
        head: Select[Any, Any] | None,
        tail: Select[Any, Any] | None,
        total: int,
        offset: int,
        limit: int,
    ) -> list[int]:
        """Ids from `offset` (at most `limit`) of: `head`'s models, the other matching ones by name, `tail`'s.

        The ranked models are few next to a registry (those downloaded, evaluated, or by a scored author): they are
        read whole, and the rest is read a page at a time along the name index.
        """
        first = [row[0] for row in self.s.execute(head)] if head is not None else []
        last = [row[0] for row in self.s.execute(tail)] if tail is not None else []
        ids = first[offset : offset + limit]
        rest = total - len(first) - len(last)
        skip = max(0, offset - len(first))
        if len(ids) < limit and skip < rest:
            others = matching
            for ranked in (head, tail):
                if ranked is not None:
                    others = others.where(ModelRow.id.not_in(select(ranked.order_by(None).subquery().c[0])))
            ids += self.s.scalars(others.order_by(ModelRow.full_name).offset(skip).limit(limit - len(ids)))
        skip = max(0, offset - len(first) - rest)
        if len(ids) < limit:
            ids += last[skip : skip + limit - len(ids)]
        return ids

    def _recently_updated(self, matching: Select[Any] | None, offset: int, limit: int) -> list[int]:
        """Ids of the models (`matching` ones only, if given) by their newest version, newest first.

        Versions are read by id, newest first, until the page is full: a first page reads a few rows rather than
        grouping every version of the registry.
        """
        query = select(VersionRow.model_id).order_by(VersionRow.id.desc())
        if matching is not None:
            query = query.where(VersionRow.model_id.in_(matching))
        seen: dict[int, None] = {}
        for model_id in self.s.scalars(query.execution_options(yield_per=1000)):
            seen.setdefault(model_id, None)
            if len(seen) >= offset + limit:
                break
        return list(seen)[offset:]

    def _matching(self, f: ModelFilter) -> Select[Any]:
        """The ids of the models matching every filter of `f`."""
        query: Select[Any] = select(ModelRow.id)
        if f.owner:
            query = query.where(ModelRow.owner == f.owner)
        if f.license:
            query = query.where(ModelRow.license == f.license)
        if f.name_glob:
            glob = f.name_glob if "/" in f.name_glob or "*" in f.name_glob else f"*{f.name_glob}*"
            owner, _, rest = glob.partition("/")
            if rest == "*" and is_owner(owner):
                # `OWNER/*`, the common glob, is exactly the owner's models (stored names are valid, so no other
                # full name starts with `OWNER/`): the owner index answers it instead of a scan of every name.
                query = query.where(ModelRow.owner == owner)
            else:
                query = query.where(ModelRow.full_name.like(glob_to_like(glob), escape="\\"))
        if f.tag:
            query = query.where(ModelRow.id.in_(select(TagRow.model_id).where(TagRow.tag == f.tag)))
        if f.author:
            # DISTINCT: without it PostgreSQL walks every model in name order probing the versions (measured 300 ms
            # at 1M versions, against 15 ms); with it, it gathers the author's few models first.
            authored = select(VersionRow.model_id).where(VersionRow.author == f.author).distinct()
            query = query.where(ModelRow.id.in_(authored))
        if f.search:
            query = query.where(matches(f.search, self.s.get_bind().dialect.name, indexed=self.search_index))
        for metric, value in f.min_metrics:
            query = query.where(ModelRow.id.in_(_latest_with_metric(metric, value)))
        if f.scan:
            query = query.where(ModelRow.id.in_(_latest_scanned(f.scan)))
        if f.format:
            query = query.where(ModelRow.id.in_(_latest_with_format(f.format)))
        return query

    def _model_records(self, ids: Any, limit: int | None = None) -> list[ModelRecord]:
        """Plain columns, two queries: a listing builds no ORM objects and parses no manifests."""
        latest = (
            select(VersionRow.model_id, func.max(VersionRow.number).label("n"), func.count().label("versions"))
            .where(VersionRow.model_id.in_(ids))  # grouped over the listed models only, not the whole registry
            .group_by(VersionRow.model_id)
            .subquery()
        )
        m, v = ModelRow, VersionRow
        query = (
            select(
                m.id,
                m.owner,
                m.name,
                m.description,
                m.license,
                m.created_at,
                latest.c.versions,
                v.number,
                v.digest,
                v.author,
                v.total_size,
                v.file_count,
                v.created_at.label("v_created"),
            )
            .outerjoin(latest, latest.c.model_id == m.id)
            .outerjoin(v, (v.model_id == m.id) & (v.number == latest.c.n))
            .where(m.id.in_(ids))
            .order_by(m.full_name)
        )
        if limit is not None:
            query = query.limit(limit)
        conn = self.s.connection()  # Core: the ORM's row loading would add a third to a large listing
        rows = conn.execute(query).all()
        tags: dict[int, list[str]] = {}
        if rows:
            tag_rows = conn.execute(
                select(TagRow.model_id, TagRow.tag).where(TagRow.model_id.in_(ids)).order_by(TagRow.tag)
            )
            for model_id, tag in tag_rows:
                tags.setdefault(model_id, []).append(tag)
        # Rows unpacked as tuples: a Row's attribute lookups were half of a 1,000-model listing's time.
        return [
            ModelRecord(
                owner=owner,
                name=name,
                description=description,
                license=license_,
                tags=tuple(tags.get(model_id, ())),
                created_at=utc(created),
                latest=None
                if number is None
                else VersionSummary(number, digest, author, total_size, file_count, utc(v_created)),
                version_count=versions or 0,
            )
            for (
                model_id,
                owner,
                name,
                description,
                license_,
                created,
                versions,
                number,
                digest,
                author,
                total_size,
                file_count,
                v_created,
            ) in rows
        ]

    def versions_sharing_blob(self, sha256_hex: str) -> int:
        return self.s.scalar(select(func.count()).where(VersionFileRow.sha256 == sha256_hex)) or 0


def _latest_with_metric(metric: str, value: float) -> Select[Any]:
    """Ids of models whose latest version has an evaluation with `metric` >= `value`."""
    newer = aliased(VersionRow)
    return (
        select(VersionRow.model_id)
        .join(EvaluationRow, EvaluationRow.version_id == VersionRow.id)
        .join(EvaluationMetricRow, EvaluationMetricRow.evaluation_id == EvaluationRow.id)
        .where(
            EvaluationMetricRow.name == metric,
            EvaluationMetricRow.value >= value,
            ~select(newer.id).where(newer.model_id == VersionRow.model_id, newer.number > VersionRow.number).exists(),
        )
    )


def _latest_with_format(fmt: str) -> Select[Any]:
    """Ids of models whose latest version has a file the scanner detected as `fmt`."""
    newer = aliased(VersionRow)
    return (
        select(VersionRow.model_id)
        .join(VersionFileRow, VersionFileRow.version_id == VersionRow.id)
        .where(
            VersionFileRow.format == fmt,
            ~select(newer.id).where(newer.model_id == VersionRow.model_id, newer.number > VersionRow.number).exists(),
        )
    )


def _latest_scanned(verdict: str) -> Select[Any]:
    """Ids of models whose latest version was registered by a push whose scan verdict was `verdict`."""
    newer, model = aliased(VersionRow), aliased(ModelRow)
    return (
        select(VersionRow.model_id)
        .join(model, model.id == VersionRow.model_id)
        .join(
            EventRow,
            (EventRow.subject == VersionRow.digest) & (EventRow.model == model.full_name) & (EventRow.action == "push"),
        )
        .where(
            EventRow.details["scan"].as_string() == verdict,
            ~select(newer.id).where(newer.model_id == VersionRow.model_id, newer.number > VersionRow.number).exists(),
        )
    )


def _version_record(
    model: ModelHandle, v: VersionRow, aliases: Sequence[str], file_cids: dict[str, tuple[str | None, str | None]]
) -> VersionRecord:
    lineage = v.lineage
    known = {path: (v0, v1) for path, (v0, v1) in file_cids.items() if v0 is not None and v1 is not None}
    cids = IpfsCids(v.cid_v0, v.cid_v1, known) if known and len(known) == len(file_cids) else None
    return VersionRecord(
        owner=model.owner,
        name=model.name,
        number=v.number,
        manifest=Manifest.from_json(json.loads(v.manifest)),
        author=v.author,
        created_at=utc(v.created_at),
        lineage=Lineage(
            parents=tuple(lineage.get("parents", ())),
            datasets=tuple(lineage.get("datasets", ())),
            code_revision=lineage.get("code_revision"),
            params=dict(lineage.get("params", {})),
            metadata=dict(lineage.get("metadata", {})),
        ),
        aliases=tuple(aliases),
        single_file=v.single_file,
        cids=cids,
    )
