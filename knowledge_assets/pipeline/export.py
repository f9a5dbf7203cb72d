"""Exports of the graph store: Turtle, JSON-LD (rdflib) and JSON lines of mentions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.models import Entity, Relation
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.pipeline.rdf import graph_to_rdf, to_jsonld, to_turtle

ExportFormat = Literal["ttl", "jsonld", "mentions"]


def load_graph(engine: sa.Engine) -> tuple[list[Entity], list[Relation]]:
    """Every stored entity (with types and aliases) and relation (evidence left out)."""
    with engine.connect() as connection:
        types = _grouped(connection, t.entity_types.c.entity_id, t.entity_types.c.type)
        aliases = _grouped(connection, t.entity_aliases.c.entity_id, t.entity_aliases.c.alias)
        entities = [
            Entity(
                id=row.id,
                canonical_name=row.canonical_name,
                types=tuple(types.get(row.id, ())),
                aliases=tuple(aliases.get(row.id, ())),
                mention_ids=(),
            )
            for row in connection.execute(sa.select(t.entities).order_by(t.entities.c.id))
        ]
        relations = [
            Relation(
                id=row.id,
                subject_id=row.subject_id,
                predicate=row.predicate,
                object_id=row.object_id,
                object_literal=row.object_literal,
                evidence=(),
            )
            for row in connection.execute(sa.select(t.relations).order_by(t.relations.c.id))
        ]
    return entities, relations


def _grouped(connection: sa.Connection, key: sa.Column, value: sa.Column) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for k, v in connection.execute(sa.select(key, value).order_by(key, value)):
        grouped.setdefault(k, []).append(v)
    return grouped


def iter_mentions(engine: sa.Engine) -> Iterator[dict[str, object]]:
    """Mentions as ``{"doc_id", "start", "end", "text", "type", "entity_id"}`` dicts."""
    m, d = t.mentions, t.documents
    query = (
        sa.select(d.c.name, m.c.start, m.c.end, m.c.text, m.c.label, m.c.entity_id)
        .join(d, d.c.id == m.c.document_id)
        .order_by(d.c.name, m.c.start, m.c.end, m.c.label)
    )
    with engine.connect() as connection:
        for name, start, end, text, label, entity_id in connection.execute(query):
            yield {
                "doc_id": name,
                "start": start,
                "end": end,
                "text": text,
                "type": label,
                "entity_id": entity_id,
            }


def export(engine: sa.Engine, ontology: Ontology, fmt: ExportFormat) -> Iterator[str]:
    """The whole graph in the chosen format, as text pieces to write out."""
    if fmt == "mentions":
        for row in iter_mentions(engine):
            yield json.dumps(row, ensure_ascii=False) + "\n"
        return
    entities, relations = load_graph(engine)
    graph = graph_to_rdf(entities, relations, ontology)
    yield to_turtle(graph) if fmt == "ttl" else to_jsonld(graph)
