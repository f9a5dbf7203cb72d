"""Read-only queries of the graph store for the API (SQLAlchemy Core: bound parameters only)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from api.models import EntityDetail, EntitySummary, MentionView, RelationView
from knowledge_assets.db import tables as t

__all__ = ["find_entities", "get_entity"]


def find_entities(
    engine: sa.Engine, *, q: str | None, type_: str | None, offset: int, limit: int
) -> list[EntitySummary]:
    """Entities whose name or an alias contains ``q`` and that have type ``type_``, by name."""
    e = t.entities
    query = sa.select(e.c.id, e.c.canonical_name).order_by(e.c.canonical_name, e.c.id)
    if q:
        pattern = f"%{_escape_like(q)}%"
        aliases = sa.select(t.entity_aliases.c.entity_id).where(
            t.entity_aliases.c.alias.ilike(pattern, escape="\\")
        )
        query = query.where(
            sa.or_(e.c.canonical_name.ilike(pattern, escape="\\"), e.c.id.in_(aliases))
        )
    if type_:
        typed = sa.select(t.entity_types.c.entity_id).where(t.entity_types.c.type == type_)
        query = query.where(e.c.id.in_(typed))
    with engine.connect() as connection:
        rows = connection.execute(query.offset(offset).limit(limit)).all()
        return _summaries(connection, rows)


def get_entity(engine: sa.Engine, entity_id: str) -> EntityDetail | None:
    """One entity with its aliases, mentions (with document spans) and relations in and out."""
    e = t.entities
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(e.c.id, e.c.canonical_name).where(e.c.id == entity_id)
        ).first()
        if row is None:
            return None
        (summary,) = _summaries(connection, [row])
        return EntityDetail(
            **summary.model_dump(),
            mentions=_mentions(connection, entity_id),
            relations_out=_relations(connection, t.relations.c.subject_id == entity_id),
            relations_in=_relations(connection, t.relations.c.object_id == entity_id),
        )


def _summaries(connection: sa.Connection, rows: Sequence[sa.Row]) -> list[EntitySummary]:
    ids = [row.id for row in rows]
    types = _grouped(connection, t.entity_types.c.entity_id, t.entity_types.c.type, ids)
    aliases = _grouped(connection, t.entity_aliases.c.entity_id, t.entity_aliases.c.alias, ids)
    return [
        EntitySummary(
            id=row.id,
            name=row.canonical_name,
            types=types.get(row.id, []),
            aliases=aliases.get(row.id, []),
        )
        for row in rows
    ]


def _grouped(
    connection: sa.Connection, key: sa.Column, value: sa.Column, ids: list[str]
) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    if ids:
        query = sa.select(key, value).where(key.in_(ids)).order_by(key, value)
        for k, v in connection.execute(query):
            grouped.setdefault(k, []).append(v)
    return grouped


def _mentions(connection: sa.Connection, entity_id: str) -> list[MentionView]:
    m, d = t.mentions, t.documents
    query = (
        sa.select(m.c.id, m.c.document_id, d.c.name, m.c.start, m.c.end, m.c.text, m.c.label)
        .join(d, d.c.id == m.c.document_id)
        .where(m.c.entity_id == entity_id)
        .order_by(d.c.name, m.c.start, m.c.id)
    )
    return [
        MentionView(
            id=r.id,
            document_id=r.document_id,
            document=r.name,
            start=r.start,
            end=r.end,
            text=r.text,
            label=r.label,
        )
        for r in connection.execute(query)
    ]


def _relations(connection: sa.Connection, condition: sa.ColumnElement[bool]) -> list[RelationView]:
    r = t.relations
    query = sa.select(r).where(condition).order_by(r.c.predicate, r.c.id)
    return [
        RelationView(
            id=row.id,
            subject_id=row.subject_id,
            predicate=row.predicate,
            object_id=row.object_id,
            object_literal=row.object_literal,
        )
        for row in connection.execute(query)
    ]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
