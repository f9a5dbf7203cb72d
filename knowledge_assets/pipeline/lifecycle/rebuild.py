"""A batch's content read back from the database and the extraction cache, never extracted again.

When a document leaves a batch (a newer version elsewhere, a deletion), the rest of the batch
must be resolved again without it, exactly as a fresh run of the remaining documents would be.
Their texts are in ``documents``, where they were cut in ``chunks``, and what the extractor
found in the cache, under the identity the batch recorded (``batch_contributions``). A chunk
the cache cannot answer failed when the batch ran: it fails again here with the reason the
batch's quarantine gave, so the rebuilt batch holds back what the original held back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.pipeline.cache import ExtractionCache, cache_key
from knowledge_assets.pipeline.extractors.factory import PayloadReader
from knowledge_assets.pipeline.lifecycle.content import BatchContent
from knowledge_assets.pipeline.models import (
    Chunk,
    ChunkResult,
    Document,
    DocumentRejection,
    ExtractorInfo,
)

__all__ = ["Rechunk", "stored_content"]

Rechunk = Callable[[Sequence[Document]], list[Chunk]]
"""Cuts documents into chunks: for batches ingested before chunks were recorded."""

_POISON = "extraction failed on every attempt: "
_FAILED = "extraction failed: "
_NOT_CACHED = "no cached extraction for this chunk: reprocess the batch to extract it again"


def stored_content(
    connection: sa.Connection,
    batch_id: str,
    names: Collection[str],
    reader: Callable[[ExtractorInfo], PayloadReader],
    rechunk: Rechunk,
) -> BatchContent:
    """The batch's content for the named documents it holds, as the graph stores it."""
    contribution = connection.execute(
        sa.select(t.batch_contributions).where(t.batch_contributions.c.batch_id == batch_id)
    ).one()
    extractor = ExtractorInfo.model_validate(contribution.extractor)
    identity = ExtractorInfo.model_validate(contribution.cache_extractor)
    documents = _documents(connection, batch_id, names)
    chunks = _chunks(connection, documents) or rechunk(documents)
    held = _held_back(connection, batch_id)
    return BatchContent(
        batch_id=batch_id,
        documents=tuple(documents),
        rejections=tuple(_rejections(connection, batch_id)),
        chunks=tuple(chunks),
        results=tuple(_results(connection, chunks, identity, reader(identity), held)),
        extractor=extractor,
        cache_extractor=identity,
    )


def _documents(connection: sa.Connection, batch_id: str, names: Collection[str]) -> list[Document]:
    d, bd = t.documents.c, t.batch_documents.c
    query = (
        sa.select(d.id, d.name, d.text, d.sha256)
        .join(t.batch_documents, bd.document_id == d.id)
        .where(bd.batch_id == batch_id, d.name.in_(sorted(names)))
        .order_by(d.name)
    )
    return [
        Document(id=r.id, name=r.name, text=r.text, sha256=r.sha256)
        for r in connection.execute(query)
    ]


def _chunks(connection: sa.Connection, documents: Sequence[Document]) -> list[Chunk]:
    """The recorded chunks, in document order; empty if any document has none recorded."""
    c = t.chunks.c
    texts = {d.id: d.text for d in documents}
    rows = connection.execute(
        sa.select(c.id, c.document_id, c.index, c.start, c.end, c.sha256).where(
            c.document_id.in_(sorted(texts))
        )
    ).mappings()
    order = {d.id: n for n, d in enumerate(documents)}
    chunks = sorted(
        (
            Chunk(**{**row, "text": texts[row["document_id"]][row["start"] : row["end"]]})
            for row in rows
        ),
        key=lambda chunk: (order[chunk.document_id], chunk.index),
    )
    return chunks if {chunk.document_id for chunk in chunks} == set(texts) else []


def _held_back(connection: sa.Connection, batch_id: str) -> dict[str, tuple[str, str]]:
    """Chunk ids and document ids the batch's quarantine held back: (kind, reason)."""
    q = t.quarantine.c
    found: dict[str, tuple[str, str]] = {}
    rows = connection.execute(
        sa.select(q.kind, q.subject, q.reason, q.detail).where(
            q.batch_id == batch_id, q.kind.in_(["chunk", "document"])
        )
    )
    for kind, subject, reason, detail in rows:
        if kind == "chunk":
            found[subject] = ("chunk", reason.removeprefix(_FAILED))
        elif detail.get("code") == "poison" and detail.get("chunk_id"):
            found[detail["chunk_id"]] = ("poison", reason.removeprefix(_POISON))
    return found


def _results(
    connection: sa.Connection,
    chunks: Sequence[Chunk],
    identity: ExtractorInfo,
    read: PayloadReader,
    held: dict[str, tuple[str, str]],
) -> list[ChunkResult]:
    payloads = ExtractionCache.read_many(connection, [cache_key(c, identity) for c in chunks])
    results = []
    for chunk in chunks:
        payload = payloads.get(cache_key(chunk, identity))
        if payload is not None:
            results.append(
                ChunkResult(chunk_id=chunk.id, extraction=read(chunk, payload), from_cache=True)
            )
            continue
        kind, reason = held.get(chunk.id, ("chunk", _NOT_CACHED))
        results.append(ChunkResult(chunk_id=chunk.id, error=reason, poisoned=kind == "poison"))
    return results


def _rejections(connection: sa.Connection, batch_id: str) -> list[DocumentRejection]:
    """The batch's refused documents, as its quarantine recorded them."""
    q = t.quarantine.c
    rows = connection.execute(
        sa.select(q.subject, q.reason, q.detail).where(q.batch_id == batch_id, q.kind == "document")
    )
    return [
        DocumentRejection(name=subject, code=detail["code"], reason=reason)
        for subject, reason, detail in rows
        if detail.get("code") not in (None, "poison")
    ]
