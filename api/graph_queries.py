"""Read-only queries of the graph store for the API (SQLAlchemy Core: bound parameters only)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from api.models import (
    CanonicalView,
    DocumentMention,
    DocumentView,
    EntityDetail,
    EntityRef,
    EntitySummary,
    EvidenceView,
    MentionView,
    RelationView,
    TypeCount,
)
from knowledge_assets.db import tables as t

__all__ = ["entity_types", "find_entities", "get_document", "get_entity"]


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


def entity_types(engine: sa.Engine) -> list[TypeCount]:
    """Every type some entity has, with how many entities have it, most common first."""
    types = t.entity_types
    count = sa.func.count().label("entities")
    query = (
        sa.select(types.c.type, count).group_by(types.c.type).order_by(count.desc(), types.c.type)
    )
    with engine.connect() as connection:
        return [
            TypeCount(name=row.type, entities=row.entities) for row in connection.execute(query)
        ]


def get_entity(engine: sa.Engine, entity_id: str) -> EntityDetail | None:
    """One entity: aliases, canonical entity, mentions, and relations with both ends named."""
    e = t.entities
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(e.c.id, e.c.canonical_name).where(e.c.id == entity_id)
        ).first()
        if row is None:
            return None
        (summary,) = _summaries(connection, [row])
        relations_out = _relation_rows(connection, t.relations.c.subject_id == entity_id)
        relations_in = _relation_rows(connection, t.relations.c.object_id == entity_id)
        views = _relation_views(connection, [*relations_out, *relations_in])
        return EntityDetail(
            **summary.model_dump(),
            canonical=_canonical(connection, entity_id),
            mentions=_mentions(connection, entity_id),
            relations_out=[views[r.id] for r in relations_out],
            relations_in=[views[r.id] for r in relations_in],
        )


def get_document(engine: sa.Engine, document_id: str) -> DocumentView | None:
    """A stored document's text and every mention in it, in text order."""
    d, m = t.documents, t.mentions
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(d.c.id, d.c.name, d.c.sha256, d.c.text).where(d.c.id == document_id)
        ).first()
        if row is None:
            return None
        mentions = connection.execute(
            sa.select(m.c.id, m.c.start, m.c.end, m.c.text, m.c.label, m.c.entity_id)
            .where(m.c.document_id == document_id)
            .order_by(m.c.start, m.c.end, m.c.id)
        )
        return DocumentView(
            id=row.id,
            name=row.name,
            sha256=row.sha256,
            text=row.text,
            mentions=[DocumentMention(**mention._mapping) for mention in mentions],
        )


def _summaries(connection: sa.Connection, rows: Sequence[sa.Row]) -> list[EntitySummary]:
    ids = [row.id for row in rows]
    types = _grouped(connection, t.entity_types.c.entity_id, t.entity_types.c.type, ids)
    aliases = _grouped(connection, t.entity_aliases.c.entity_id, t.entity_aliases.c.alias, ids)
    counts = _mention_counts(connection, ids)
    return [
        EntitySummary(
            id=row.id,
            name=row.canonical_name,
            types=types.get(row.id, []),
            aliases=aliases.get(row.id, []),
            mention_count=counts.get(row.id, 0),
        )
        for row in rows
    ]


def _grouped(
    connection: sa.Connection, key: sa.Column, value: sa.Column, ids: Iterable[str]
) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    ids = list(ids)
    if ids:
        query = sa.select(key, value).where(key.in_(ids)).order_by(key, value)
        for k, v in connection.execute(query):
            grouped.setdefault(k, []).append(v)
    return grouped


def _mention_counts(connection: sa.Connection, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    m = t.mentions
    query = sa.select(m.c.entity_id, sa.func.count()).where(m.c.entity_id.in_(ids))
    return dict(connection.execute(query.group_by(m.c.entity_id)).tuples().all())


def _canonical(connection: sa.Connection, entity_id: str) -> CanonicalView | None:
    c, members = t.canonical_entities, t.canonical_members
    row = connection.execute(
        sa.select(c.c.id, c.c.name, c.c.types, c.c.aliases, c.c.members, c.c.mention_count)
        .join(members, members.c.canonical_id == c.c.id)
        .where(members.c.entity_id == entity_id)
    ).first()
    if row is None:
        return None
    return CanonicalView(
        id=row.id,
        name=row.name,
        types=list(row.types),
        aliases=list(row.aliases),
        members=row.members,
        mention_count=row.mention_count,
    )


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


def _relation_rows(connection: sa.Connection, condition: sa.ColumnElement[bool]) -> list[sa.Row]:
    r = t.relations
    query = sa.select(r).where(condition).order_by(r.c.predicate, r.c.id)
    return list(connection.execute(query))


def _relation_views(connection: sa.Connection, rows: list[sa.Row]) -> dict[str, RelationView]:
    """The relations with both ends named and typed and their evidence, by relation id."""
    ends = {row.subject_id for row in rows} | {row.object_id for row in rows if row.object_id}
    refs = _entity_refs(connection, ends)
    evidence = _evidence(connection, [row.id for row in rows])
    return {
        row.id: RelationView(
            id=row.id,
            subject_id=row.subject_id,
            predicate=row.predicate,
            object_id=row.object_id,
            object_literal=row.object_literal,
            subject=refs.get(row.subject_id) or _unknown(row.subject_id),
            object=(refs.get(row.object_id) or _unknown(row.object_id)) if row.object_id else None,
            evidence=evidence.get(row.id, []),
        )
        for row in rows
    }


def _entity_refs(connection: sa.Connection, ids: set[str]) -> dict[str, EntityRef]:
    if not ids:
        return {}
    e = t.entities
    names = connection.execute(sa.select(e.c.id, e.c.canonical_name).where(e.c.id.in_(ids)))
    types = _grouped(connection, t.entity_types.c.entity_id, t.entity_types.c.type, ids)
    return {
        row.id: EntityRef(id=row.id, name=row.canonical_name, types=types.get(row.id, []))
        for row in names
    }


def _unknown(entity_id: str) -> EntityRef:
    # A relation whose other end is not in the store (never the case after a whole ingest).
    return EntityRef(id=entity_id, name=entity_id, types=[])


def _evidence(connection: sa.Connection, relation_ids: list[str]) -> dict[str, list[EvidenceView]]:
    if not relation_ids:
        return {}
    ev, d = t.relation_evidence, t.documents
    quote = sa.func.substr(d.c.text, ev.c.start + 1, ev.c.end - ev.c.start)
    query = (
        sa.select(ev.c.relation_id, ev.c.document_id, d.c.name, ev.c.start, ev.c.end, quote)
        .join(d, d.c.id == ev.c.document_id)
        .where(ev.c.relation_id.in_(relation_ids))
        .order_by(ev.c.relation_id, d.c.name, ev.c.start, ev.c.end)
    )
    found: dict[str, list[EvidenceView]] = {}
    for relation_id, document_id, name, start, end, text in connection.execute(query):
        view = EvidenceView(document_id=document_id, document=name, start=start, end=end, text=text)
        found.setdefault(relation_id, []).append(view)
    return found


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
