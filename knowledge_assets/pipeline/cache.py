"""Per-chunk, content-addressed extraction cache: the checkpoint finer than a step."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from knowledge_assets.db.tables import extraction_cache
from knowledge_assets.pipeline.extractors.base import Extractor
from knowledge_assets.pipeline.models import Chunk, ChunkExtraction, ChunkResult, ExtractorInfo


def cache_key(chunk: Chunk, info: ExtractorInfo) -> str:
    """Chunk content + extractor name/version + ontology/prompt hash: nothing else matters."""
    parts = (chunk.sha256, info.name, info.version, info.config_hash)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class ExtractionCache:
    """Reads and writes cached ``ChunkExtraction``s; failures are never written."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get_many(self, keys: Iterable[str]) -> dict[str, ChunkExtraction]:
        """Cached extractions for the keys that have one."""
        wanted = sorted(set(keys))
        found: dict[str, ChunkExtraction] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), 5000):
                query = sa.select(extraction_cache.c.key, extraction_cache.c.result).where(
                    extraction_cache.c.key.in_(wanted[start : start + 5000])
                )
                for key, result in connection.execute(query):
                    found[key] = ChunkExtraction.model_validate(result)
        return found

    def put_many(self, rows: Sequence[tuple[Chunk, ExtractorInfo, ChunkExtraction]]) -> None:
        """Store extractions in one transaction; an existing key is left as it is."""
        if not rows:
            return
        values = [
            {
                "key": cache_key(chunk, info),
                "extractor": info.name,
                "extractor_version": info.version,
                "config_hash": info.config_hash,
                "chunk_sha256": chunk.sha256,
                "result": extraction.model_dump(mode="json"),
            }
            for chunk, info, extraction in rows
        ]
        with self.engine.begin() as connection:
            connection.execute(insert(extraction_cache).on_conflict_do_nothing(), values)


@dataclass
class ExtractionStats:
    """How a batch's chunks were served."""

    chunks: int = 0
    cache_hits: int = 0
    extractor_calls: int = 0
    failures: int = 0


class CachedExtraction:
    """Serves chunks from the cache, sends only misses to the extractor, checkpoints as it goes.

    Results are flushed every ``flush_every`` chunks or ``flush_seconds``, so a crash loses at most
    the chunks in flight plus one unflushed group.
    """

    def __init__(
        self,
        cache: ExtractionCache,
        extractor: Extractor,
        *,
        flush_every: int = 32,
        flush_seconds: float = 1.0,
    ) -> None:
        self.cache = cache
        self.extractor = extractor
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.stats = ExtractionStats()

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkResult]:
        """Yield one result per chunk: cached ones first, then fresh ones as they complete."""
        info = self.extractor.info
        self.stats.chunks += len(chunks)
        cached = self.cache.get_many(cache_key(c, info) for c in chunks)
        misses: list[Chunk] = []
        for chunk in chunks:
            hit = cached.get(cache_key(chunk, info))
            if hit is None:
                misses.append(chunk)
                continue
            self.stats.cache_hits += 1
            yield ChunkResult(chunk_id=chunk.id, extraction=hit, from_cache=True)
        yield from self._extract(misses, info)

    def _extract(self, misses: list[Chunk], info: ExtractorInfo) -> Iterator[ChunkResult]:
        if not misses:
            return
        by_id = {c.id: c for c in misses}
        pending: list[tuple[Chunk, ExtractorInfo, ChunkExtraction]] = []
        last_flush = time.monotonic()
        try:
            for result in self.extractor.extract(misses):
                self.stats.extractor_calls += 1
                if result.extraction is None:
                    self.stats.failures += 1
                else:
                    pending.append((by_id[result.chunk_id], info, result.extraction))
                due = time.monotonic() - last_flush >= self.flush_seconds
                if len(pending) >= self.flush_every or (pending and due):
                    self.cache.put_many(pending)
                    pending, last_flush = [], time.monotonic()
                yield result
        finally:
            self.cache.put_many(pending)
