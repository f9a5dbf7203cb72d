"""The rows one batch contributes to each table it owns, from its content and validated graph.

A batch owns the rows that carry its id: its documents' membership, mentions, relation
evidence, quarantine, its entities' support and their aliases' support. The tables every batch
shares (``documents``, ``entities``, ``entity_types``, ``entity_aliases``, ``relations``) are
derived from these (``derive.py``), so no batch ever overwrites another's facts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.lifecycle.content import BatchContent
from knowledge_assets.pipeline.models import Entity, Mention, ValidatedGraph

__all__ = ["OWNED", "Row", "batch_rows", "document_row", "relation_rows"]

Row = dict[str, Any]

OWNED: tuple[sa.Table, ...] = (
    t.batch_contributions,
    t.batch_documents,
    t.mentions,
    t.relation_evidence,
    t.quarantine,
    t.entity_support,
    t.alias_support,
)
"""The tables whose rows belong to one batch (each has a ``batch_id`` column)."""


def batch_rows(content: BatchContent, graph: ValidatedGraph, position: int) -> dict[str, list[Row]]:
    """Every row the batch owns, by table name."""
    batch_id = content.batch_id
    linked = [m for m in graph.mentions if m.entity_id]
    return {
        t.batch_contributions.name: [
            {
                "batch_id": batch_id,
                "position": position,
                "extractor": content.extractor.model_dump(),
                "cache_extractor": content.cache_extractor.model_dump(),
            }
        ],
        t.batch_documents.name: [
            {"batch_id": batch_id, "document_id": d.id} for d in content.documents
        ],
        t.mentions.name: [_mention_row(m) for m in linked],
        t.relation_evidence.name: _evidence_rows(graph),
        t.quarantine.name: [
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
        t.entity_support.name: _support_rows(batch_id, graph.entities, linked),
        t.alias_support.name: _alias_rows(batch_id, graph.entities, linked),
    }


def document_row(content: BatchContent) -> list[Row]:
    """The ``documents`` rows of the batch's documents."""
    return [
        {"id": d.id, "name": d.name, "sha256": d.sha256, "text": d.text} for d in content.documents
    ]


def relation_rows(graph: ValidatedGraph) -> dict[str, Row]:
    """Each relation's defining columns by id (``first_batch_id`` is derived later)."""
    return {
        r.id: {
            "id": r.id,
            "subject_id": r.subject_id,
            "predicate": r.predicate,
            "object_id": r.object_id,
            "object_literal": r.object_literal,
        }
        for r in graph.relations
    }


def _mention_row(m: Mention) -> Row:
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


def _evidence_rows(graph: ValidatedGraph) -> list[Row]:
    rows: dict[tuple[str, str, int, int], Row] = {}
    for relation in graph.relations:
        for ev in relation.evidence:
            rows.setdefault(
                (relation.id, ev.document_id, ev.start, ev.end),
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


def _documents_of(mentions: list[Mention]) -> Mapping[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for m in mentions:
        found[str(m.entity_id)].add(m.document_id)
    return found


def _support_rows(batch_id: str, entities: tuple[Entity, ...], linked: list[Mention]) -> list[Row]:
    documents = _documents_of(linked)
    counts: dict[str, int] = defaultdict(int)
    for m in linked:
        counts[str(m.entity_id)] += 1
    return [
        {
            "entity_id": e.id,
            "batch_id": batch_id,
            "canonical_name": e.canonical_name,
            "types": list(e.types),
            "documents": sorted(documents.get(e.id, ())),
            "mentions": counts.get(e.id, 0),
        }
        for e in entities
    ]


def _alias_rows(batch_id: str, entities: tuple[Entity, ...], linked: list[Mention]) -> list[Row]:
    """One row per alias and document version whose mentions spell it.

    An alias no mention spells exactly (resolution may name an entity from its mentions in
    other ways) is attributed to every document of the entity: it stands or falls with them.
    """
    spelled: dict[tuple[str, str], set[str]] = defaultdict(set)
    for m in linked:
        spelled[(str(m.entity_id), m.text.strip())].add(m.document_id)
    documents = _documents_of(linked)
    rows: list[Row] = []
    for e in entities:
        for alias in e.aliases:
            where = spelled.get((e.id, alias)) or documents.get(e.id) or set()
            for document_id in sorted(where):
                rows.append(
                    {
                        "entity_id": e.id,
                        "alias": alias,
                        "document_id": document_id,
                        "batch_id": batch_id,
                    }
                )
    return rows
