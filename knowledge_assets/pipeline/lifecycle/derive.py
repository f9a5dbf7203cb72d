"""The shared tables, derived from what each batch supports.

An entity or a relation may be supported by several batches. Its row exists while any batch
supports it; its name and ``first_batch_id`` come from the supporting batch submitted first
(``batch_contributions.position``), its types and aliases are the union of every supporter's.
So the rows depend only on which versions are live and in which order they were submitted,
never on the order runs happened to finish in, and a retraction leaves exactly the rows the
remaining batches support.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.lifecycle.changes import TableChanges, delete_keys, insert_rows

__all__ = ["derive_entities", "derive_relations", "reconcile_documents"]

_SLICE = 5000


def _slices(ids: Iterable[str]) -> Iterable[list[str]]:
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), _SLICE):
        yield wanted[start : start + _SLICE]


def derive_entities(connection: sa.Connection, ids: Iterable[str]) -> TableChanges:
    """Bring ``entities``, ``entity_types`` and ``entity_aliases`` of ``ids`` in line."""
    changes = TableChanges()
    for part in _slices(ids):
        _derive_entity_slice(connection, part, changes)
    return changes


def _derive_entity_slice(connection: sa.Connection, ids: list[str], changes: TableChanges) -> None:
    s, c = t.entity_support.c, t.batch_contributions.c
    supporters = connection.execute(
        sa.select(s.entity_id, s.batch_id, s.canonical_name, s.types, c.position)
        .join(t.batch_contributions, c.batch_id == s.batch_id)
        .where(s.entity_id.in_(ids))
        .order_by(s.entity_id, c.position, s.batch_id)
    ).all()
    primary: dict[str, tuple[str, str]] = {}
    types: dict[str, set[str]] = defaultdict(set)
    for row in supporters:
        primary.setdefault(row.entity_id, (row.canonical_name, row.batch_id))
        types[row.entity_id].update(row.types)
    a = t.alias_support.c
    aliases: dict[str, set[str]] = defaultdict(set)
    for entity_id, alias in connection.execute(
        sa.select(a.entity_id, a.alias).where(a.entity_id.in_(ids)).distinct()
    ):
        aliases[entity_id].add(alias)
    _entity_rows(connection, ids, primary, changes)
    _pairs(connection, t.entity_types, "type", ids, types, changes)
    _pairs(connection, t.entity_aliases, "alias", ids, aliases, changes)


def _entity_rows(
    connection: sa.Connection,
    ids: list[str],
    primary: Mapping[str, tuple[str, str]],
    changes: TableChanges,
) -> None:
    e = t.entities.c
    current = {
        row.id: (row.canonical_name, row.first_batch_id)
        for row in connection.execute(
            sa.select(e.id, e.canonical_name, e.first_batch_id).where(e.id.in_(ids))
        )
    }
    gone = [(i,) for i in current if i not in primary]
    changes.record(t.entities, removed=delete_keys(connection, t.entities, gone))
    fresh = [
        {"id": i, "canonical_name": name, "first_batch_id": batch}
        for i, (name, batch) in primary.items()
        if i not in current
    ]
    changes.record(t.entities, added=insert_rows(connection, t.entities, fresh))
    for i, wanted in primary.items():
        if i in current and current[i] != wanted:
            connection.execute(
                sa.update(t.entities)
                .where(e.id == i)
                .values(canonical_name=wanted[0], first_batch_id=wanted[1])
            )
            changes.record(t.entities, added=1, removed=1)


def _pairs(
    connection: sa.Connection,
    table: sa.Table,
    column: str,
    ids: list[str],
    wanted: Mapping[str, set[str]],
    changes: TableChanges,
) -> None:
    key = table.c.entity_id
    current = {
        (row[0], row[1])
        for row in connection.execute(sa.select(key, table.c[column]).where(key.in_(ids)))
    }
    desired = {(i, value) for i, values in wanted.items() for value in values}
    changes.record(table, removed=delete_keys(connection, table, sorted(current - desired)))
    rows = [{"entity_id": i, column: value} for i, value in sorted(desired - current)]
    changes.record(table, added=insert_rows(connection, table, rows))


def derive_relations(
    connection: sa.Connection, ids: Iterable[str], values: Mapping[str, Mapping[str, Any]]
) -> TableChanges:
    """Bring the ``relations`` rows of ``ids`` in line with their evidence.

    ``values`` gives the defining columns of relations that may be new (from the graph just
    applied); a relation that keeps evidence keeps its row.
    """
    changes = TableChanges()
    ev, c, r = t.relation_evidence.c, t.batch_contributions.c, t.relations.c
    for part in _slices(ids):
        first: dict[str, str] = {}
        for relation_id, batch_id in connection.execute(
            sa.select(ev.relation_id, ev.batch_id)
            .join(t.batch_contributions, c.batch_id == ev.batch_id)
            .where(ev.relation_id.in_(part))
            .order_by(ev.relation_id, c.position, ev.batch_id)
        ):
            first.setdefault(relation_id, batch_id)
        current = dict(
            connection.execute(sa.select(r.id, r.first_batch_id).where(r.id.in_(part)))
            .tuples()
            .all()
        )
        gone = [(i,) for i in current if i not in first]
        changes.record(t.relations, removed=delete_keys(connection, t.relations, gone))
        fresh = [{**values[i], "first_batch_id": b} for i, b in first.items() if i not in current]
        changes.record(t.relations, added=insert_rows(connection, t.relations, fresh))
        for i, batch_id in first.items():
            if i in current and current[i] != batch_id:
                connection.execute(
                    sa.update(t.relations).where(r.id == i).values(first_batch_id=batch_id)
                )
                changes.record(t.relations, added=1, removed=1)
    return changes


def reconcile_documents(
    connection: sa.Connection, rows: Iterable[Mapping[str, Any]], touched: Iterable[str]
) -> TableChanges:
    """Keep exactly the document rows some batch holds, among ``touched`` and offered ``rows``.

    A document's row is its text: a version no batch holds any more leaves no text behind.
    """
    changes = TableChanges()
    offered = {row["id"]: row for row in rows}
    d, bd = t.documents.c, t.batch_documents.c
    candidates = sorted(set(touched) | set(offered))
    held: set[str] = set()
    for part in _slices(candidates):
        query = sa.select(bd.document_id).where(bd.document_id.in_(part)).distinct()
        held.update(connection.execute(query).scalars())
    gone = [(i,) for i in candidates if i not in held]
    changes.record(t.documents, removed=delete_keys(connection, t.documents, gone))
    wanted = [row for i, row in offered.items() if i in held]
    for start in range(0, len(wanted), 2000):
        statement = insert(t.documents).on_conflict_do_nothing().returning(d.id)
        added = connection.execute(statement, wanted[start : start + 2000]).all()
        changes.record(t.documents, added=len(added))
    return changes
