"""The one interface every extractor implements, and the error types they share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from knowledge_assets.pipeline.models import (
    Chunk,
    ChunkExtraction,
    ChunkResult,
    ExtractorInfo,
    Frozen,
    Usage,
)

RawOutput = Mapping[str, Any]
"""A model's own output for one chunk, as JSON: what a ``MappingExtractor``'s cache keeps."""


class ExtractionError(RuntimeError):
    """A chunk could not be extracted; the message is the reason a user reads."""


@runtime_checkable
class Extractor(Protocol):
    """Turns chunks into ``ChunkResult``s.

    ``extract`` yields exactly one result per input chunk, in any order, as soon as each chunk is
    done, so callers can checkpoint (cache) results one by one. A chunk that fails yields a result
    with ``error`` set instead of raising; the extractor keeps going with the other chunks.
    """

    @property
    def info(self) -> ExtractorInfo:
        """Name, version and configuration hash: part of cache keys and provenance."""
        ...

    def extract(self, chunks: Sequence[Chunk]) -> Iterator[ChunkResult]:
        """Extract every chunk, yielding results as they complete."""
        ...

    def close(self) -> None:
        """Release clients, pools and models."""
        ...


@runtime_checkable
class CheckpointingExtractor(Extractor, Protocol):
    """An extractor whose workers hand each result to a checkpoint before taking the next chunk.

    Costly extractors (LLM calls) use it: the caller's ``checkpoint`` makes the result durable in
    the worker thread, so results from many workers share one write while no worker starts a new
    request before its last result is stored. At any moment at most the extractor's concurrency
    of requests were sent without their results being stored: that is all a kill -9 can lose.
    """

    def extract_checkpointed(
        self, chunks: Iterable[Chunk], checkpoint: Callable[[ChunkResult], None]
    ) -> Iterator[ChunkResult]:
        """As ``extract``; each result is yielded only after ``checkpoint(result)`` returned.

        ``chunks`` is pulled one chunk at a time as slots free up, so a caller can hand over a
        lazy iterable (and, say, count attempts for a group when its first chunk is pulled).
        """
        ...


class RawResult(Frozen):
    """One chunk's raw model output, or why it failed, and what producing it cost."""

    chunk_id: str
    raw: dict[str, Any] | None = None
    error: str | None = None
    usage: Usage | None = None


@runtime_checkable
class Mapper(Protocol):
    """Turns a model's raw output for a chunk into mentions and relations of the ontology.

    Cheap and without the model: an ontology change re-maps cached raw outputs instead of
    calling the model again, and a batch is rebuilt without loading the model at all.
    """

    def map_raw(self, chunk: Chunk, raw: RawOutput) -> ChunkExtraction:
        """The chunk's extraction under the mapper's ontology."""
        ...


@runtime_checkable
class MappingExtractor(Extractor, Mapper, Protocol):
    """An extractor in two steps: raw model output (no ontology), then ``map_raw``.

    The cache keeps the raw output under ``raw_info``, which names the model and the format of
    its output but not the ontology; ``info`` (provenance, staleness) still covers everything.
    """

    @property
    def raw_info(self) -> ExtractorInfo:
        """Identity of the raw output: model name, version and options, never the ontology."""
        ...

    def extract_raw(self, chunks: Sequence[Chunk]) -> Iterator[RawResult]:
        """The model's raw output for every chunk, yielded as each is done."""
        ...


def cache_identity(extractor: Extractor) -> ExtractorInfo:
    """The identity a cache keys an extractor's results by: the raw one when it has one."""
    return extractor.raw_info if isinstance(extractor, MappingExtractor) else extractor.info
