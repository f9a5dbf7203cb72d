"""The stage functions both paths call: the direct pipeline and the Dagster assets.

Each stage takes and returns pydantic models, so the Dagster IO manager can store them as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import rdflib
from pydantic import Field

from knowledge_assets.pipeline.cache import CachedExtraction
from knowledge_assets.pipeline.chunking import chunk_documents
from knowledge_assets.pipeline.documents import prepare_documents
from knowledge_assets.pipeline.extractors.base import cache_identity
from knowledge_assets.pipeline.extractors.factory import payload_reader
from knowledge_assets.pipeline.lifecycle.apply import IngestOutcome, Recompute
from knowledge_assets.pipeline.lifecycle.content import BatchContent
from knowledge_assets.pipeline.models import (
    Chunk,
    ChunkResult,
    Document,
    DocumentInput,
    DocumentRejection,
    Evidence,
    ExtractedMention,
    ExtractedRelation,
    ExtractorInfo,
    Frozen,
    Mention,
    Quarantined,
    Relation,
    ResolvedGraph,
    ValidatedGraph,
    stable_id,
)
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.pipeline.resolution.in_batch import resolve_entities
from knowledge_assets.pipeline.resolution.propagation import propagate_mentions
from knowledge_assets.pipeline.store import Fence, GraphStore
from knowledge_assets.pipeline.validation import validate_graph

ProgressCallback = Callable[[int, int], None]


class PreparedDocuments(Frozen):
    """Accepted documents of a batch and the ones refused, with reasons."""

    documents: tuple[Document, ...]
    rejections: tuple[DocumentRejection, ...] = ()


class ChunkSet(Frozen):
    """All chunks of a batch, in document order."""

    chunks: tuple[Chunk, ...]


class Extractions(Frozen):
    """One result per chunk plus how they were served (cache hits vs extractor calls).

    ``cache_extractor`` is the identity the results are cached under (``None`` in values
    stored before it was recorded: the extractor's own), ``extractor_seconds`` the time spent
    waiting for the extractor.
    """

    extractor: ExtractorInfo
    results: tuple[ChunkResult, ...]
    cache_hits: int = 0
    extractor_calls: int = 0
    failures: int = 0
    cache_extractor: ExtractorInfo | None = None
    extractor_seconds: float = 0.0


class IngestSummary(Frozen):
    """What ingestion changed (zero rows on a re-run of the same batch).

    ``superseded`` are the batch's documents a newer version overrides (not ingested);
    ``displaced`` the documents this batch took over from older batches, by batch.
    """

    batch_id: str
    inserted: dict[str, int]
    entities: int
    relations: int
    quarantined: int
    retracted: dict[str, int] = Field(default_factory=dict)
    superseded: tuple[str, ...] = ()
    displaced: dict[str, list[str]] = Field(default_factory=dict)


def prepare(
    items: Sequence[DocumentInput],
    *,
    max_bytes: int,
    refused: Sequence[DocumentRejection] = (),
) -> PreparedDocuments:
    """Decode and check every input; ``refused`` are refusals made before decoding (e.g. files)."""
    documents, rejections = prepare_documents(items, max_bytes=max_bytes)
    return PreparedDocuments(
        documents=tuple(documents), rejections=tuple(refused) + tuple(rejections)
    )


def chunk(prepared: PreparedDocuments, *, max_chars: int) -> ChunkSet:
    """Sentence-aligned chunks with exact offsets."""
    return ChunkSet(chunks=tuple(chunk_documents(list(prepared.documents), max_chars=max_chars)))


def extract(
    chunks: ChunkSet, extraction: CachedExtraction, progress: ProgressCallback | None = None
) -> Extractions:
    """Serve every chunk from the cache or the extractor; failures are kept, not raised.

    ``extraction`` must be fresh: its counters become the stage's counts.
    """
    by_id: dict[str, ChunkResult] = {}
    total = len(chunks.chunks)
    for result in extraction.run(chunks.chunks):
        by_id[result.chunk_id] = result
        if progress is not None:
            progress(len(by_id), total)
    stats = extraction.stats
    return Extractions(
        extractor=extraction.extractor.info,
        results=tuple(by_id[c.id] for c in chunks.chunks),
        cache_hits=stats.cache_hits,
        extractor_calls=stats.extractor_calls,
        failures=stats.failures,
        cache_extractor=cache_identity(extraction.extractor),
        extractor_seconds=round(stats.extractor_seconds, 6),
    )


def resolve(
    batch_id: str,
    prepared: PreparedDocuments,
    chunks: ChunkSet,
    extractions: Extractions,
    ontology: Ontology,
    *,
    threshold: float,
) -> ResolvedGraph:
    """Place mentions in their documents, resolve them into entities, and map relations."""
    placed = _place(batch_id, prepared, chunks, extractions)
    found = propagate_mentions(
        batch_id, placed.mentions, *_searchable(prepared, chunks, extractions)
    )
    entities, mentions = resolve_entities((*placed.mentions, *found), ontology, threshold=threshold)
    entity_of = {m.id: m.entity_id for m in mentions if m.entity_id}
    relations = _relations(placed.relations, entity_of)
    quarantined = _rejections(batch_id, prepared.rejections) + placed.quarantined
    return ResolvedGraph(
        batch_id=batch_id,
        entities=tuple(entities),
        mentions=tuple(mentions),
        relations=relations,
        quarantined=quarantined,
    )


def _searchable(
    prepared: PreparedDocuments, chunks: ChunkSet, extractions: Extractions
) -> tuple[dict[str, str], list[Chunk]]:
    """Texts and chunks where names may be looked for again: extracted, not held back."""
    extracted = {r.chunk_id for r in extractions.results if r.extraction is not None}
    poisoned = {r.chunk_id for r in extractions.results if r.poisoned}
    by_chunk = {c.id: c for c in chunks.chunks}
    held = {by_chunk[i].document_id for i in poisoned if i in by_chunk}
    good = [c for c in chunks.chunks if c.id in extracted and c.document_id not in held]
    texts = {d.id: d.text for d in prepared.documents if d.id not in held}
    return texts, good


def validate(
    resolved: ResolvedGraph, ontology: Ontology, shapes: rdflib.Graph | None = None
) -> ValidatedGraph:
    """SHACL-check the facts; quarantine violations and keep earlier quarantines."""
    checked = validate_graph(resolved, ontology, shapes)
    known = {q.id for q in checked.quarantined}
    carried = tuple(q for q in resolved.quarantined if q.id not in known)
    return checked.model_copy(update={"quarantined": checked.quarantined + carried})


def ingest(
    store: GraphStore,
    content: BatchContent,
    graph: ValidatedGraph,
    recompute: Recompute,
    fence: Fence | None = None,
) -> IngestOutcome:
    """Apply the batch's live documents to the graph, committed only if ``fence`` allows it.

    Idempotent: the same batch applied again changes nothing.
    """
    return store.ingest(content, graph, recompute, fence)


def content_of(
    batch_id: str, prepared: PreparedDocuments, chunks: ChunkSet, extractions: Extractions
) -> BatchContent:
    """The batch's content as the stages produced it."""
    return BatchContent(
        batch_id=batch_id,
        documents=prepared.documents,
        rejections=prepared.rejections,
        chunks=chunks.chunks,
        results=extractions.results,
        extractor=extractions.extractor,
        cache_extractor=extractions.cache_extractor or extractions.extractor,
    )


class StageGraphBuilder:
    """Resolution then validation of a batch's content: the stages ``resolve`` and ``validate``."""

    def __init__(
        self, ontology: Ontology, shapes: rdflib.Graph | None, *, threshold: float
    ) -> None:
        self.ontology = ontology
        self.shapes = shapes
        self.threshold = threshold

    def build(self, content: BatchContent) -> ValidatedGraph:
        """The validated graph of exactly the content's documents."""
        prepared = PreparedDocuments(documents=content.documents, rejections=content.rejections)
        extractions = Extractions(extractor=content.extractor, results=content.results)
        resolved = resolve(
            content.batch_id,
            prepared,
            ChunkSet(chunks=content.chunks),
            extractions,
            self.ontology,
            threshold=self.threshold,
        )
        return validate(resolved, self.ontology, self.shapes)


def recompute(
    ontology: Ontology, shapes: rdflib.Graph | None, *, threshold: float, max_chars: int
) -> Recompute:
    """How batches are resolved again from the graph store under this configuration."""
    return Recompute(
        builder=StageGraphBuilder(ontology, shapes, threshold=threshold),
        reader=lambda identity: payload_reader(identity, ontology),
        rechunk=lambda documents: chunk_documents(list(documents), max_chars=max_chars),
    )


PlacedRelation = tuple[str, str, str | None, str | None, Evidence]
"""(subject mention id, predicate, object mention id, object literal, evidence)."""


class _Placed(Frozen):
    mentions: tuple[Mention, ...]
    relations: tuple[PlacedRelation, ...]
    quarantined: tuple[Quarantined, ...]


def _place(
    batch_id: str, prepared: PreparedDocuments, chunks: ChunkSet, extractions: Extractions
) -> _Placed:
    texts = {d.id: d.text for d in prepared.documents}
    by_chunk = {c.id: c for c in chunks.chunks}
    info = extractions.extractor
    mentions: dict[str, Mention] = {}
    relations: list[PlacedRelation] = []
    poison = _poison_documents(batch_id, prepared, by_chunk, extractions)
    quarantined: list[Quarantined] = list(poison.values())
    for result in extractions.results:
        chunk_ = by_chunk[result.chunk_id]
        if chunk_.document_id in poison:
            continue  # the whole document is held back, not just the chunk that failed
        if result.extraction is None:
            quarantined.append(_chunk_failure(batch_id, chunk_, result.error or "unknown error"))
            continue
        local: list[str | None] = []
        for m in result.extraction.mentions:
            mention, problem = _mention(batch_id, chunk_, texts[chunk_.document_id], m, info)
            local.append(mention.id if mention else None)
            if mention is not None:
                mentions.setdefault(mention.id, mention)
            elif problem is not None:
                quarantined.append(problem)
        for r in result.extraction.relations:
            placed = _relation(batch_id, chunk_, r, local, info)
            if isinstance(placed, Quarantined):
                quarantined.append(placed)
            else:
                relations.append(placed)
    return _Placed(
        mentions=tuple(mentions.values()),
        relations=tuple(relations),
        quarantined=tuple(quarantined),
    )


def _poison_documents(
    batch_id: str, prepared: PreparedDocuments, by_chunk: dict[str, Chunk], extractions: Extractions
) -> dict[str, Quarantined]:
    names = {d.id: d.name for d in prepared.documents}
    held: dict[str, Quarantined] = {}
    for result in extractions.results:
        document_id = by_chunk[result.chunk_id].document_id
        if result.poisoned and document_id not in held:
            held[document_id] = Quarantined(
                id=stable_id("q", batch_id, "document", names[document_id], "poison"),
                batch_id=batch_id,
                kind="document",
                subject=names[document_id],
                reason=f"extraction failed on every attempt: {result.error}",
                detail={"code": "poison", "chunk_id": result.chunk_id},
            )
    return held


def _evidence(batch_id: str, chunk_: Chunk, start: int, end: int, info: ExtractorInfo) -> Evidence:
    return Evidence(
        document_id=chunk_.document_id,
        chunk_id=chunk_.id,
        start=chunk_.start + start,
        end=chunk_.start + end,
        batch_id=batch_id,
        extractor=info.name,
        extractor_version=info.version,
    )


def _mention(
    batch_id: str, chunk_: Chunk, doc_text: str, m: ExtractedMention, info: ExtractorInfo
) -> tuple[Mention | None, Quarantined | None]:
    start, end = chunk_.start + m.start, chunk_.start + m.end
    if m.end > len(chunk_.text) or doc_text[start:end] != m.text or not m.text.strip():
        reason = (
            f"mention {m.text!r} does not match the document text at [{start}, {end}) "
            f"({doc_text[start:end]!r})"
        )
        return None, Quarantined(
            id=stable_id("q", batch_id, "mention", chunk_.id, m.start, m.end, m.text),
            batch_id=batch_id,
            kind="mention",
            subject=m.text[:200],
            reason=reason,
            detail={"chunk_id": chunk_.id, "label": m.label},
        )
    mention = Mention(
        id=stable_id("men", chunk_.document_id, start, end, m.label),
        document_id=chunk_.document_id,
        chunk_id=chunk_.id,
        start=start,
        end=end,
        text=m.text,
        label=m.label,
        evidence=_evidence(batch_id, chunk_, m.start, m.end, info),
    )
    return mention, None


def _relation(
    batch_id: str, chunk_: Chunk, r: ExtractedRelation, local: list[str | None], info: ExtractorInfo
) -> PlacedRelation | Quarantined:
    subject = local[r.subject] if r.subject < len(local) else None
    obj = None
    if r.object is not None:
        obj = local[r.object] if r.object < len(local) else None
    if subject is None or (r.object is not None and obj is None):
        return Quarantined(
            id=stable_id("q", batch_id, "relation", chunk_.id, r.subject, r.predicate, r.object),
            batch_id=batch_id,
            kind="relation",
            subject=r.predicate,
            reason=f"relation {r.predicate} refers to a mention that was not kept",
            detail={"chunk_id": chunk_.id},
        )
    evidence = _evidence(batch_id, chunk_, r.start, r.end, info)
    return (subject, r.predicate, obj, r.object_literal, evidence)


def _relations(
    placed: Sequence[PlacedRelation],
    entity_of: Mapping[str, str | None],
) -> tuple[Relation, ...]:
    merged: dict[str, tuple[str, str, str | None, str | None, list[Evidence]]] = {}
    for subject_mention, predicate, object_mention, literal, evidence in placed:
        subject = entity_of.get(subject_mention)
        obj = entity_of.get(object_mention) if object_mention else None
        if subject is None or (object_mention and obj is None):
            continue
        rid = stable_id("rel", subject, predicate, obj or "", literal or "")
        entry = merged.setdefault(rid, (subject, predicate, obj, literal, []))
        if evidence not in entry[4]:
            entry[4].append(evidence)
    return tuple(
        Relation(
            id=rid,
            subject_id=s,
            predicate=p,
            object_id=o,
            object_literal=lit,
            evidence=tuple(sorted(ev, key=lambda e: (e.document_id, e.start, e.end))),
        )
        for rid, (s, p, o, lit, ev) in sorted(merged.items())
    )


def _chunk_failure(batch_id: str, chunk_: Chunk, error: str) -> Quarantined:
    return Quarantined(
        id=stable_id("q", batch_id, "chunk", chunk_.id),
        batch_id=batch_id,
        kind="chunk",
        subject=chunk_.id,
        reason=f"extraction failed: {error}",
        detail={"document_id": chunk_.document_id, "start": str(chunk_.start)},
    )


def _rejections(batch_id: str, rejections: Sequence[DocumentRejection]) -> tuple[Quarantined, ...]:
    return tuple(
        Quarantined(
            id=stable_id("q", batch_id, "document", r.name, r.code),
            batch_id=batch_id,
            kind="document",
            subject=r.name,
            reason=r.reason,
            detail={"code": r.code},
        )
        for r in rejections
    )


__all__ = [
    "ChunkSet",
    "Extractions",
    "PreparedDocuments",
    "StageGraphBuilder",
    "chunk",
    "content_of",
    "extract",
    "ingest",
    "prepare",
    "recompute",
    "resolve",
    "validate",
]
