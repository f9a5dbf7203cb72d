"""The one interface every extractor implements, and the error types they share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from knowledge_assets.pipeline.models import Chunk, ChunkResult, ExtractorInfo


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
