"""The graph store in PostgreSQL: idempotent, natural-key upserts of a validated batch."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from knowledge_assets.db import tables as t
from knowledge_assets.failpoints import failpoint
from knowledge_assets.pipeline.models import Document, ValidatedGraph


@dataclass
class IngestReport:
    """Rows each table gained; all zeros when the same batch is ingested again."""

    inserted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Rows inserted across all tables."""
        return sum(self.inserted.values())


class GraphStore:
    """Writes batches into the graph tables and reads them back for exports and queries."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def ingest(
        self,
        batch_id: str,
        documents: Sequence[Document],
        graph: ValidatedGraph,
        fence: Fence | None = None,
    ) -> IngestReport:
        """Insert everything new in one transaction; rows that exist are left untouched.

        A ``fence`` is checked inside the transaction before any write: a stale attempt (an
        orphaned process of a run that was retried) raises ``StaleAttempt`` and writes nothing.
        """
        report = IngestReport()
        with self.engine.begin() as connection:
            if fence is not None:
                fence.check(connection)
            for table, rows in _rows_for(batch_id, documents, graph):
                report.inserted[table.name] = _insert_new(connection, table, rows)
            failpoint("ingested_graph.commit")  # a crash here must leave no row behind
        return report

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every graph row, sorted, without timestamps: for comparing two stores exactly."""
        result: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as connection:
            for table in t.GRAPH_TABLES:
                columns = [c for c in table.columns if c.name != "created_at"]
                rows = connection.execute(sa.select(*columns).order_by(*table.primary_key))
                result[table.name] = [tuple(map(_comparable, row)) for row in rows]
        return result

    def counts(self) -> dict[str, int]:
        """Row count of every graph table."""
        with self.engine.connect() as connection:
            return {
                table.name: connection.execute(
                    sa.select(sa.func.count()).select_from(table)
                ).scalar_one()
                for table in t.GRAPH_TABLES
            }


class StaleAttempt(RuntimeError):
    """A newer attempt owns this batch's writes; this one must not commit."""


class Fence(Protocol):
    """Decides, inside the writing transaction, whether this attempt may still write.

    An implementation must hold whatever lock keeps its answer true until the transaction ends.
    """

    def check(self, connection: sa.Connection) -> None:
        """Return if this attempt is current; raise ``StaleAttempt`` otherwise."""
        ...


def _comparable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def _insert_new(connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    key = next(iter(table.primary_key.columns))
    statement = insert(table).on_conflict_do_nothing().returning(key)
    inserted = 0
    for start in range(0, len(rows), 2000):
        result = connection.execute(statement, rows[start : start + 2000])
        inserted += len(result.all())
    return inserted


def _rows_for(
    batch_id: str, documents: Sequence[Document], graph: ValidatedGraph
) -> Iterable[tuple[sa.Table, list[dict[str, Any]]]]:
    yield (
        t.documents,
        [{"id": d.id, "name": d.name, "sha256": d.sha256, "text": d.text} for d in documents],
    )
    yield t.batch_documents, [{"batch_id": batch_id, "document_id": d.id} for d in documents]
    yield (
        t.entities,
        [
            {"id": e.id, "canonical_name": e.canonical_name, "first_batch_id": batch_id}
            for e in graph.entities
        ],
    )
    yield (
        t.entity_types,
        [{"entity_id": e.id, "type": kind} for e in graph.entities for kind in e.types],
    )
    yield (
        t.entity_aliases,
        [{"entity_id": e.id, "alias": alias} for e in graph.entities for alias in e.aliases],
    )
    yield t.mentions, [_mention_row(m) for m in graph.mentions if m.entity_id]
    yield (
        t.relations,
        [
            {
                "id": r.id,
                "subject_id": r.subject_id,
                "predicate": r.predicate,
                "object_id": r.object_id,
                "object_literal": r.object_literal,
                "first_batch_id": batch_id,
            }
            for r in graph.relations
        ],
    )
    yield t.relation_evidence, _evidence_rows(graph)
    yield (
        t.quarantine,
        [
            {
                "id": q.id,
                "batch_id": q.batch_id,
                "kind": q.kind,
                "subject": q.subject,
                "reason": q.reason,
                "detail": q.detail,
            }
            for q in graph.quarantined
        ],
    )


def _mention_row(m: Any) -> dict[str, Any]:
    return {
        "id": m.id,
        "document_id": m.document_id,
        "chunk_id": m.chunk_id,
        "start": m.start,
        "end": m.end,
        "text": m.text,
        "label": m.label,
        "entity_id": m.entity_id,
        "batch_id": m.evidence.batch_id,
        "extractor": m.evidence.extractor,
        "extractor_version": m.evidence.extractor_version,
    }


def _evidence_rows(graph: ValidatedGraph) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    for relation in graph.relations:
        for ev in relation.evidence:
            key = (relation.id, ev.document_id, ev.start, ev.end)
            rows.setdefault(
                key,
                {
                    "relation_id": relation.id,
                    "document_id": ev.document_id,
                    "start": ev.start,
                    "end": ev.end,
                    "chunk_id": ev.chunk_id,
                    "batch_id": ev.batch_id,
                    "extractor": ev.extractor,
                    "extractor_version": ev.extractor_version,
                },
            )
    return list(rows.values())
