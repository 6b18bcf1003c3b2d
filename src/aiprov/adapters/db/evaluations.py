"""Datasets and evaluations in the database: the rows stay here; the unit takes and returns records."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from aiprov.adapters.db.schema import DatasetRow, EvaluationMetricRow, EvaluationRow, ModelRow, VersionRow
from aiprov.adapters.db.times import utc
from aiprov.adapters.db.unit import UnitBase
from aiprov.errors import Conflict, NotFound
from aiprov.ports import ModelHandle, VersionHandle
from aiprov.records import DatasetRecord, EvaluationRecord


class EvaluationRows(UnitBase):
    """The dataset and evaluation part of `SqlRegistryUnit` (one transaction's session, `s`)."""

    # datasets ---------------------------------------------------------------------------------------------

    def dataset(self, full_name: str) -> DatasetRecord | None:
        row = self.s.scalars(select(DatasetRow).where(DatasetRow.full_name == full_name)).one_or_none()
        return None if row is None else _dataset(row)

    def datasets(self) -> list[DatasetRecord]:
        return [_dataset(r) for r in self.s.scalars(select(DatasetRow).order_by(DatasetRow.full_name))]

    def add_dataset(self, record: DatasetRecord, leaf_index: int) -> None:
        """Record a dataset whose `dataset` event is log entry `leaf_index`. Raises Conflict if it exists."""
        self.s.add(
            DatasetRow(
                owner=record.owner,
                name=record.name,
                full_name=record.full_name,
                digest=record.digest,
                format=record.format,
                target=record.target,
                task=record.task,
                rows=record.rows,
                features=list(record.features),
                size=record.size,
                author=record.author,
                created_at=record.created_at,
                leaf_index=leaf_index,
            )
        )
        try:
            self.s.flush()
        except SqlIntegrityError as e:
            raise Conflict(f"dataset {record.full_name} was registered meanwhile; try again") from e

    # evaluations ------------------------------------------------------------------------------------------

    def add_evaluation(self, version: VersionHandle, record: EvaluationRecord) -> EvaluationRecord:
        """Record an evaluation of `version` and one row per numeric metric (what `ls --min` filters on).

        `record.id` is ignored; the returned record carries the id the database gave it.
        """
        row = EvaluationRow(
            version_id=version.id,
            model_digest=record.digest,
            dataset=record.dataset,
            dataset_digest=record.dataset_digest,
            task=record.task,
            split=record.split,
            metrics=record.metrics,
            packages=record.packages,
            duration_s=record.duration_s,
            evaluator=record.evaluator,
            created_at=record.created_at,
            attestation=record.attestation,
            key_fingerprint=record.key_fingerprint,
            leaf_index=record.leaf_index,
        )
        self.s.add(row)
        self.s.flush()
        self.s.add_all(
            EvaluationMetricRow(evaluation_id=row.id, name=name, value=float(value))
            for name, value in record.metrics.items()
            if isinstance(value, int | float)
        )
        self.s.flush()
        return dataclasses.replace(record, id=row.id)

    def evaluation(self, evaluation_id: int) -> EvaluationRecord:
        """The evaluation with id `evaluation_id`. Raises NotFound."""
        found = self.s.execute(
            select(ModelRow, VersionRow, EvaluationRow)
            .join(VersionRow, VersionRow.model_id == ModelRow.id)
            .join(EvaluationRow, EvaluationRow.version_id == VersionRow.id)
            .where(EvaluationRow.id == evaluation_id)
        ).one_or_none()
        if found is None:
            raise NotFound(f"no evaluation {evaluation_id}")
        return _evaluation(found[0], found[1], found[2])

    def evaluations_of(self, model: ModelHandle, version: VersionHandle) -> list[EvaluationRecord]:
        """Every evaluation of `version`, oldest first."""
        query = select(EvaluationRow).where(EvaluationRow.version_id == version.id).order_by(EvaluationRow.id)
        return [_evaluation(model, version, r) for r in self.s.scalars(query)]

    def evaluations_of_model(self, model: ModelHandle) -> list[EvaluationRecord]:
        """Every evaluation of every version of `model`, by version then oldest first (one query)."""
        query = (
            select(VersionRow, EvaluationRow)
            .join(EvaluationRow, EvaluationRow.version_id == VersionRow.id)
            .where(VersionRow.model_id == model.id)
            .order_by(VersionRow.number, EvaluationRow.id)
        )
        return [_evaluation(model, v, r) for v, r in self.s.execute(query)]


def _dataset(r: DatasetRow) -> DatasetRecord:
    return DatasetRecord(
        owner=r.owner,
        name=r.name,
        digest=r.digest,
        format=r.format,
        target=r.target,
        task=r.task,
        rows=r.rows,
        features=tuple(r.features),
        size=r.size,
        author=r.author,
        created_at=utc(r.created_at),
    )


def _evaluation(model: ModelHandle, version: VersionHandle, r: EvaluationRow) -> EvaluationRecord:
    return EvaluationRecord(
        id=r.id,
        model=model.full_name,
        version=version.number,
        digest=r.model_digest,
        dataset=r.dataset,
        dataset_digest=r.dataset_digest,
        task=r.task,
        split=dict(r.split),
        metrics=dict(r.metrics),
        packages=dict(r.packages),
        duration_s=r.duration_s,
        evaluator=r.evaluator,
        created_at=utc(r.created_at),
        leaf_index=r.leaf_index,
        key_fingerprint=r.key_fingerprint,
        attestation=r.attestation,
    )
