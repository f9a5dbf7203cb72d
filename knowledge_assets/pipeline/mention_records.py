"""Resolving bare mention records (``doc_id, start, end, text, type``) the way the pipeline does.

Each group of records is one batch: resolved in-batch by ``resolve_entities``, ingested into the
graph store, then merged into the registry by ``merge_new_batches``, so the answer is exactly
what the pipeline and the ``canonical_entities`` asset would give for those mentions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.lifecycle.apply import Recompute
from knowledge_assets.pipeline.lifecycle.content import BatchContent
from knowledge_assets.pipeline.models import (
    Chunk,
    ChunkExtraction,
    Document,
    Entity,
    Evidence,
    ExtractorInfo,
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
    document_id = _document_id(batch_id, record.doc_id)
    evidence = Evidence(
        document_id=document_id,
        chunk_id=document_id,
        start=record.start,
        end=record.end,
        batch_id=batch_id,
        extractor="records",
        extractor_version="1",
    )
    return Mention(
        id=record.id,
        document_id=document_id,
        chunk_id=document_id,
        start=record.start,
        end=record.end,
        text=record.text,
        label=record.type,
        evidence=evidence,
    )


def _document_id(batch_id: str, doc_id: str) -> str:
    """The id (and name) of a records document inside one batch.

    Documents are known only by the records' ``doc_id`` and may recur in several batches: each
    batch holds its own, so no batch's records are a newer version of another's.
    """
    return f"{batch_id}/{doc_id}"


def _ingest(
    engine: sa.Engine,
    batch_id: str,
    records: Sequence[MentionRecord],
    entities: Sequence[Entity],
    mentions: Sequence[Mention],
) -> None:
    """Store the batch as the pipeline would; documents are known only by id, without text.

    A record given in an earlier batch too is stored once, with the earlier batch.
    """
    names = sorted({_document_id(batch_id, r.doc_id) for r in records})
    documents = tuple(
        Document(id=name, name=name, text="", sha256=sha256_text("")) for name in names
    )
    with engine.connect() as connection:
        stored = set(
            connection.execute(
                sa.select(t.mentions.c.id).where(
                    t.mentions.c.id.in_([m.id for m in mentions]),
                    t.mentions.c.batch_id != batch_id,
                )
            ).scalars()
        )
    graph = ValidatedGraph(
        batch_id=batch_id,
        entities=tuple(entities),
        mentions=tuple(m for m in mentions if m.id not in stored),
        relations=(),
        quarantined=(),
    )
    records_info = ExtractorInfo(name="records", version="1", config_hash="")
    content = BatchContent(
        batch_id=batch_id,
        documents=documents,
        extractor=records_info,
        cache_extractor=records_info,
    )
    GraphStore(engine).ingest(content, graph, _NO_RECOMPUTE)


def _no_reader(identity: ExtractorInfo) -> Callable[[Chunk, object], ChunkExtraction]:
    raise AssertionError("record batches are never rebuilt")


class _NoBuilder:
    """Record batches are never rebuilt: each holds its own documents, never displaced."""

    def build(self, content: BatchContent) -> ValidatedGraph:
        raise AssertionError("record batches are never rebuilt")


_NO_RECOMPUTE = Recompute(builder=_NoBuilder(), reader=_no_reader, rechunk=lambda documents: [])
