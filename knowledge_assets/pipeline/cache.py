"""Per-chunk, content-addressed extraction cache: the checkpoint finer than a step."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from knowledge_assets.db.tables import extraction_attempts, extraction_cache
from knowledge_assets.failpoints import failpoint
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
        """Store extractions in one transaction; an existing key is left as it is.

        The same transaction clears the keys' attempt counts: a cached chunk is no suspect.
        """
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
        keys = [v["key"] for v in values]
        with self.engine.begin() as connection:
            connection.execute(insert(extraction_cache).on_conflict_do_nothing(), values)
            connection.execute(
                sa.delete(extraction_attempts).where(extraction_attempts.c.key.in_(keys))
            )

    def attempts(self, keys: Iterable[str]) -> dict[str, Attempts]:
        """Earlier unfinished attempts of the keys that have any."""
        wanted = sorted(set(keys))
        found: dict[str, Attempts] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), 5000):
                query = sa.select(
                    extraction_attempts.c.key,
                    extraction_attempts.c.attempts,
                    extraction_attempts.c.last_error,
                ).where(extraction_attempts.c.key.in_(wanted[start : start + 5000]))
                for key, count, error in connection.execute(query):
                    found[key] = Attempts(count, error)
        return found

    def begin_attempt(self, keys: Sequence[str]) -> None:
        """Count one more attempt for each key, before its chunk goes to the extractor."""
        if not keys:
            return
        # Chunks with the same text share a key; PostgreSQL refuses to upsert one row twice.
        unique = dict.fromkeys(keys)
        statement = insert(extraction_attempts).values([{"key": k, "attempts": 1} for k in unique])
        statement = statement.on_conflict_do_update(
            index_elements=[extraction_attempts.c.key],
            set_={"attempts": extraction_attempts.c.attempts + 1, "updated_at": sa.func.now()},
        )
        with self.engine.begin() as connection:
            connection.execute(statement)

    def record_error(self, keys: Sequence[str], error: str) -> None:
        """Remember why the attempt on these keys failed (shown when they are given up)."""
        if not keys:
            return
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(extraction_attempts)
                .where(extraction_attempts.c.key.in_(list(keys)))
                .values(last_error=error[:2000])
            )


@dataclass(frozen=True)
class Attempts:
    """How often a chunk was sent to the extractor without its result being cached."""

    count: int
    last_error: str | None


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

    Misses go to the extractor in groups, each group's attempt counted in the database first. A
    chunk whose earlier attempt never finished (its process crashed, or the extractor raised) is a
    suspect: suspects are retried in small groups, then alone, so a poison chunk is isolated from
    its neighbours; after ``max_attempts`` it is given up with the last error as the reason
    (``ChunkResult.poisoned``), and the rest of the batch goes on.
    """

    def __init__(
        self,
        cache: ExtractionCache,
        extractor: Extractor,
        *,
        flush_every: int | None = None,
        flush_seconds: float = 1.0,
        group_size: int | None = None,
        max_attempts: int = 3,
    ) -> None:
        self.cache = cache
        self.extractor = extractor
        # Costly extractors (LLM calls) checkpoint every result; cheap ones amortise the write.
        self.flush_every = flush_every or int(getattr(extractor, "checkpoint_every", 32))
        self.flush_seconds = flush_seconds
        self.group_size = group_size or int(getattr(extractor, "group_size", 64))
        self.max_attempts = max_attempts
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
        earlier = self.cache.attempts(cache_key(c, info) for c in misses)
        pending: list[tuple[Chunk, ExtractorInfo, ChunkExtraction]] = []
        last_flush = [time.monotonic()]
        try:
            for group in self._groups(misses, info, earlier):
                if isinstance(group, ChunkResult):
                    self.stats.failures += 1
                    yield group
                    continue
                for result in self._extract_group(group, info):
                    self.stats.extractor_calls += 1
                    if result.extraction is None:
                        self.stats.failures += 1
                        self.cache.record_error(
                            [cache_key(c, info) for c in group if c.id == result.chunk_id],
                            result.error or "failed",
                        )
                    else:
                        chunk = next(c for c in group if c.id == result.chunk_id)
                        pending.append((chunk, info, result.extraction))
                    if self._flush_due(pending, last_flush[0]):
                        self.cache.put_many(pending)
                        pending, last_flush[0] = [], time.monotonic()
                    yield result
        finally:
            self.cache.put_many(pending)

    def _groups(
        self, misses: list[Chunk], info: ExtractorInfo, earlier: dict[str, Attempts]
    ) -> Iterator[list[Chunk] | ChunkResult]:
        fresh: list[Chunk] = []
        suspects: dict[int, list[Chunk]] = {}
        for chunk in misses:
            attempt = earlier.get(cache_key(chunk, info))
            if attempt is None:
                fresh.append(chunk)
            elif attempt.count >= self.max_attempts:
                yield _given_up(chunk, attempt)
            else:
                suspects.setdefault(attempt.count, []).append(chunk)
        for count, chunks in sorted(suspects.items()):
            size = max(1, self.group_size >> (3 * count))  # 64 → 8 → 1
            yield from _split(chunks, size)
        yield from _split(fresh, self.group_size)

    def _extract_group(self, group: list[Chunk], info: ExtractorInfo) -> Iterator[ChunkResult]:
        keys = [cache_key(c, info) for c in group]
        self.cache.begin_attempt(keys)
        for chunk in group:
            failpoint(f"poison.{chunk.sha256[:16]}")  # a chunk that crashes every attempt
        try:
            yield from self.extractor.extract(group)
        except Exception as exc:
            self.cache.record_error(keys, f"{type(exc).__name__}: {exc}")
            raise

    def _flush_due(self, pending: Sequence[object], last_flush: float) -> bool:
        due = time.monotonic() - last_flush >= self.flush_seconds
        return len(pending) >= self.flush_every or bool(pending and due)


def _split(chunks: list[Chunk], size: int) -> Iterator[list[Chunk]]:
    for start in range(0, len(chunks), size):
        yield chunks[start : start + size]


def _given_up(chunk: Chunk, attempt: Attempts) -> ChunkResult:
    reason = attempt.last_error or "its extraction crashed the worker"
    return ChunkResult(
        chunk_id=chunk.id,
        error=f"given up after {attempt.count} failed attempts: {reason}",
        poisoned=True,
    )
