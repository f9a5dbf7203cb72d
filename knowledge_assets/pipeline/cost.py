"""What extracting a batch cost, per document: calls, cache hits, tokens, seconds.

The extraction stage records it as materialization metadata (``COST_BY_DOCUMENT``, one JSON
entry), the direct pipeline returns it, and ``knowledge status`` and the API show it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from knowledge_assets.pipeline.models import Chunk, ChunkResult, Document, Frozen

__all__ = ["COST_BY_DOCUMENT", "BatchCost", "DocumentCost", "document_costs"]

COST_BY_DOCUMENT = "cost_by_document"
"""The metadata key of the per-document costs (a JSON list of ``DocumentCost``)."""


class DocumentCost(Frozen):
    """One document's share of its batch's extraction.

    ``extractor_calls`` counts chunks sent to the extractor (as the batch's count does),
    ``requests`` the HTTP requests they took (retries and re-asks included; one per chunk for a
    local model). ``seconds`` is the time its requests took for the LLM; for a local model,
    which works on many chunks at once, the batch's model time shared out by characters.
    """

    document: str
    chunks: int = 0
    cache_hits: int = 0
    extractor_calls: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class BatchCost(Frozen):
    """A batch's cost as its latest materializations recorded it.

    Each stage's ``seconds``; what extracting took (chunks sent to the extractor, cache hits,
    tokens) for the batch and for each document. A re-run that found everything cached
    records its own cost (zero calls), not the first run's.
    """

    extractor_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: dict[str, float] = {}
    documents: tuple[DocumentCost, ...] = ()


def document_costs(
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    results: Sequence[ChunkResult],
    extractor_seconds: float,
) -> list[DocumentCost]:
    """Each document's cost, in document order."""
    chunk_of = {c.id: c for c in chunks}
    totals: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    shared: dict[str, int] = defaultdict(int)  # characters sent to a model without timings
    measured = 0.0
    for result in results:
        chunk = chunk_of[result.chunk_id]
        row = totals[chunk.document_id]
        row["chunks"] += 1
        if result.from_cache:
            row["cache_hits"] += 1
            continue
        usage = result.usage
        if usage is None:
            continue  # given up before it was sent again
        row["extractor_calls"] += 1
        row["requests"] += usage.requests
        row["prompt_tokens"] += usage.prompt_tokens
        row["completion_tokens"] += usage.completion_tokens
        if usage.seconds is None:
            shared[chunk.document_id] += len(chunk.text)
        else:
            row["seconds"] += usage.seconds
            measured += usage.seconds
    _share_out(totals, shared, max(0.0, extractor_seconds - measured))
    return [
        DocumentCost(document=d.name, **{k: _rounded(k, v) for k, v in totals[d.id].items()})
        for d in documents
    ]


def _share_out(
    totals: Mapping[str, dict[str, Any]], characters: Mapping[str, int], seconds: float
) -> None:
    total = sum(characters.values())
    for document_id, count in characters.items():
        totals[document_id]["seconds"] += seconds * count / total


def _rounded(key: str, value: Any) -> Any:
    return round(value, 3) if key == "seconds" else value
