"""What a batch's graph is computed from: its documents, their chunks, the extraction results."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from knowledge_assets.pipeline.models import (
    Chunk,
    ChunkResult,
    Document,
    DocumentRejection,
    ExtractorInfo,
    Frozen,
    ValidatedGraph,
)

__all__ = ["BatchContent", "GraphBuilder"]


class BatchContent(Frozen):
    """A batch's accepted documents, refusals, chunks and one result per chunk.

    ``extractor`` made the results (provenance); ``cache_extractor`` is the identity they are
    cached under, which is how a batch is rebuilt later without extracting again.
    """

    batch_id: str
    documents: tuple[Document, ...]
    rejections: tuple[DocumentRejection, ...] = ()
    chunks: tuple[Chunk, ...] = ()
    results: tuple[ChunkResult, ...] = ()
    extractor: ExtractorInfo
    cache_extractor: ExtractorInfo

    @property
    def names(self) -> set[str]:
        """The names of the accepted documents."""
        return {d.name for d in self.documents}

    def only(self, names: Collection[str]) -> BatchContent:
        """The same batch holding only the documents named (refusals are the batch's own)."""
        documents = tuple(d for d in self.documents if d.name in names)
        kept = {d.id for d in documents}
        chunks = tuple(c for c in self.chunks if c.document_id in kept)
        ids = {c.id for c in chunks}
        results = tuple(r for r in self.results if r.chunk_id in ids)
        return self.model_copy(
            update={"documents": documents, "chunks": chunks, "results": results}
        )


class GraphBuilder(Protocol):
    """Computes a batch's validated graph from its content (resolution and validation)."""

    def build(self, content: BatchContent) -> ValidatedGraph:
        """The graph of exactly these documents, as a fresh run of the batch would make it."""
        ...
