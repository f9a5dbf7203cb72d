"""Replace one batch's contribution to the graph with another, inside the caller's transaction.

The batch's owned rows (``rows.OWNED``) are compared with the rows it contributes now: rows
that differ are removed and added, equal ones are left alone, so applying the same contribution
twice changes nothing. The shared rows its old or new contribution touched are then derived
again. ``None`` retires the batch: it keeps no row at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.lifecycle.changes import TableChanges, delete_keys, insert_rows
from knowledge_assets.pipeline.lifecycle.content import BatchContent
from knowledge_assets.pipeline.lifecycle.derive import derive_entities, derive_relations
from knowledge_assets.pipeline.lifecycle.rows import OWNED, Row, batch_rows, relation_rows
from knowledge_assets.pipeline.models import Chunk, ValidatedGraph

__all__ = ["held_documents", "record_chunks", "swap_batch"]


def swap_batch(
    connection: sa.Connection,
    batch_id: str,
    contribution: tuple[BatchContent, ValidatedGraph] | None,
    position: int,
) -> TableChanges:
    """Make the batch's rows exactly its ``contribution``; the shared rows follow."""
    if contribution is None:
        wanted: dict[str, list[Row]] = {table.name: [] for table in OWNED}
        values: dict[str, Row] = {}
    else:
        content, graph = contribution
        wanted = batch_rows(content, graph, position)
        values = relation_rows(graph)
    changes = TableChanges()
    entities: set[str] = set()
    relations: set[str] = set()
    for table in OWNED:
        old, new = _replace(connection, table, batch_id, wanted[table.name], changes)
        if table in (t.entity_support, t.alias_support):
            entities.update(row["entity_id"] for row in (*old, *new))
        elif table is t.batch_documents:
            changes.documents.update(row["document_id"] for row in (*old, *new))
        elif table is t.relation_evidence:
            relations.update(row["relation_id"] for row in (*old, *new))
    if changes.total_added or changes.total_removed:
        changes += derive_entities(connection, entities)
        changes += derive_relations(connection, relations, values)
        _mark_registry_stale(connection, batch_id)
    return changes


def _replace(
    connection: sa.Connection,
    table: sa.Table,
    batch_id: str,
    rows: list[Row],
    changes: TableChanges,
) -> tuple[list[Row], list[Row]]:
    """Swap the batch's rows of one table; the rows removed and the rows added."""
    key = [c.name for c in table.primary_key.columns]
    current = {
        tuple(row[k] for k in key): dict(row)
        for row in connection.execute(
            sa.select(table).where(table.c.batch_id == batch_id)
        ).mappings()
    }
    current = {k: _without_defaults(table, row) for k, row in current.items()}
    wanted = {tuple(row[k] for k in key): _without_defaults(table, row) for row in rows}
    removed = [k for k, row in current.items() if wanted.get(k) != row]
    added = [k for k, row in wanted.items() if current.get(k) != row]
    changes.record(table, removed=delete_keys(connection, table, removed))
    changes.record(table, added=insert_rows(connection, table, [wanted[k] for k in added]))
    return [current[k] for k in removed], [wanted[k] for k in added]


def _without_defaults(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    """The row without columns the database fills in (timestamps), so rows compare by content."""
    return {k: v for k, v in row.items() if k != "created_at" and k in table.c}


def _mark_registry_stale(connection: sa.Connection, batch_id: str) -> None:
    """A merged batch whose contribution changed must be merged again (``registry.replay``)."""
    rb = t.registry_batches.c
    connection.execute(
        sa.update(t.registry_batches).where(rb.batch_id == batch_id).values(stale=True)
    )


def record_chunks(connection: sa.Connection, chunks: Iterable[Chunk]) -> None:
    """Remember where every extracted document version was cut (kept until it is forgotten)."""
    rows = [
        {
            "id": c.id,
            "document_id": c.document_id,
            "index": c.index,
            "start": c.start,
            "end": c.end,
            "sha256": c.sha256,
        }
        for c in chunks
    ]
    for start in range(0, len(rows), 2000):
        connection.execute(insert(t.chunks).on_conflict_do_nothing(), rows[start : start + 2000])


def held_documents(connection: sa.Connection, names: Iterable[str]) -> dict[str, set[str]]:
    """The batches whose contribution holds a document of these names, with the names held."""
    d, bd = t.documents.c, t.batch_documents.c
    query = (
        sa.select(bd.batch_id, d.name)
        .join(t.documents, d.id == bd.document_id)
        .where(d.name.in_(sorted(set(names))))
    )
    found: dict[str, set[str]] = {}
    for batch_id, name in connection.execute(query):
        found.setdefault(batch_id, set()).add(name)
    return found
