"""Resolving bare mention records (``doc_id, start, end, text, type``) the way the pipeline does.

Each group of records is one batch: resolved in-batch by ``resolve_entities``, ingested into the
graph store, then merged into the registry by ``merge_new_batches``, so the answer is exactly
what the pipeline and the ``canonical_entities`` asset would give for those mentions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from knowledge_assets.pipeline.models import (
    Document,
    Entity,
    Evidence,
    Mention,
    ValidatedGraph,
    sha256_text,
    stable_id,
)
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.pipeline.registry import canonical_of, merge_new_batches
from knowledge_assets.pipeline.resolution.ablation import ALL_ON, Rule
from knowledge_assets.pipeline.resolution.in_batch import resolve_entities
from knowledge_assets.pipeline.store import GraphStore

__all__ = ["MentionRecord", "ingest_batch", "resolve_records"]


@dataclass(frozen=True)
class MentionRecord:
    """One mention as ``knowledge resolve`` reads it; ``type`` is an opaque label."""

    doc_id: str
    start: int
    end: int
    text: str
    type: str

    @property
    def id(self) -> str:
        """A deterministic mention id: the same record is the same mention."""
        return stable_id("men", self.doc_id, self.start, self.end, self.text, self.type)


def resolve_records(
    engine: sa.Engine,
    ontology: Ontology,
    batches: Sequence[Sequence[MentionRecord]],
    *,
    threshold: float = 0.9,
    without: frozenset[Rule] = ALL_ON,
) -> dict[str, str]:
    """Resolve each batch in-batch, then merge them into the registry in the given order.

    ``without`` turns rules off, for measuring what each buys (``resolution.ablation``).

    Returns:
        Mention id (``MentionRecord.id``) -> canonical entity id.
    """
    entity_of: dict[str, str] = {}
    for records in batches:
        found = ingest_batch(engine, ontology, records, threshold=threshold, without=without)
        entity_of.update(found[1])
        merge_new_batches(engine, ontology, threshold=threshold, without=without)
    canonical = canonical_of(engine)
    return {mention: canonical.get(entity, entity) for mention, entity in entity_of.items()}


def ingest_batch(
    engine: sa.Engine,
    ontology: Ontology,
    records: Sequence[MentionRecord],
    *,
    threshold: float = 0.9,
    without: frozenset[Rule] = ALL_ON,
) -> tuple[str, dict[str, str]]:
    """Resolve one batch in-batch and store it; return its id and each mention's entity id."""
    batch_id = stable_id("rec", *sorted(r.id for r in records))
    mentions = [_mention(r, batch_id) for r in records]
    entities, linked = resolve_entities(mentions, ontology, threshold=threshold, without=without)
    _ingest(engine, batch_id, records, entities, linked)
    return batch_id, {m.id: str(m.entity_id) for m in linked}


def _mention(record: MentionRecord, batch_id: str) -> Mention:
    evidence = Evidence(
        document_id=record.doc_id,
        chunk_id=record.doc_id,
        start=record.start,
        end=record.end,
        batch_id=batch_id,
        extractor="records",
        extractor_version="1",
    )
    return Mention(
        id=record.id,
        document_id=record.doc_id,
        chunk_id=record.doc_id,
        start=record.start,
        end=record.end,
        text=record.text,
        label=record.type,
        evidence=evidence,
    )


def _ingest(
    engine: sa.Engine,
    batch_id: str,
    records: Sequence[MentionRecord],
    entities: Sequence[Entity],
    mentions: Sequence[Mention],
) -> None:
    """Store the batch as the pipeline would; documents are known only by id, without text."""
    documents = [
        Document(id=doc_id, name=doc_id, text="", sha256=sha256_text(""))
        for doc_id in sorted({r.doc_id for r in records})
    ]
    graph = ValidatedGraph(
        batch_id=batch_id,
        entities=tuple(entities),
        mentions=tuple(mentions),
        relations=(),
        quarantined=(),
    )
    GraphStore(engine).ingest(batch_id, documents, graph)
