"""Per-chunk, content-addressed extraction cache: the checkpoint finer than a step.

What is cached is what the extractor's costly step produced: a finished extraction for the
LLM, the model's raw output for the offline extractor (``MappingExtractor``), whose mapping onto
the ontology is recomputed every time. Each row keeps its chunk's hash, so the rows a deleted
document alone used can be found and forgotten.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from knowledge_assets.db.tables import extraction_attempts, extraction_cache
from knowledge_assets.failpoints import failpoint
from knowledge_assets.pipeline.extractors.base import (
    CheckpointingExtractor,
    Extractor,
    MappingExtractor,
    RawOutput,
    cache_identity,
)
from knowledge_assets.pipeline.models import (
    Chunk,
    ChunkExtraction,
    ChunkResult,
    ExtractorInfo,
)

CacheRow = tuple[Chunk, ExtractorInfo, str]
"""A chunk, the identity its result is cached under, and the result's JSON."""


def cache_key(chunk: Chunk, info: ExtractorInfo) -> str:
    """Chunk content + extractor name/version + ontology/prompt hash: nothing else matters."""
    parts = (chunk.sha256, info.name, info.version, info.config_hash)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


# One statement, in autocommit: atomic, and a single round trip. A cached chunk is no suspect, so
# the same statement stores results and clears their attempt counts.
_STORE = sa.text(
    f"""
    WITH stored AS (
        INSERT INTO {extraction_cache.fullname}
            (key, extractor, extractor_version, config_hash, chunk_sha256, result)
        SELECT * FROM unnest(
            CAST(:keys AS text[]), CAST(:extractors AS text[]), CAST(:versions AS text[]),
            CAST(:config_hashes AS text[]), CAST(:chunk_hashes AS text[]),
            CAST(:results AS jsonb[])
        )
        ON CONFLICT DO NOTHING
    )
    DELETE FROM {extraction_attempts.fullname} WHERE key = ANY(CAST(:keys AS text[]))
    """
)


class ExtractionCache:
    """Reads and writes cached ``ChunkExtraction``s; failures are never written."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get_many(self, keys: Iterable[str]) -> dict[str, RawOutput]:
        """Cached results (their JSON) for the keys that have one."""
        with self.engine.connect() as connection:
            return self.read_many(connection, keys)

    @staticmethod
    def read_many(connection: sa.Connection, keys: Iterable[str]) -> dict[str, RawOutput]:
        """``get_many`` on the caller's connection (inside its transaction)."""
        wanted = sorted(set(keys))
        found: dict[str, RawOutput] = {}
        for start in range(0, len(wanted), 5000):
            query = sa.select(extraction_cache.c.key, extraction_cache.c.result).where(
                extraction_cache.c.key.in_(wanted[start : start + 5000])
            )
            for key, result in connection.execute(query):
                found[key] = result
        return found

    @staticmethod
    def forget(connection: sa.Connection, chunk_hashes: Iterable[str]) -> int:
        """Delete every cached result and attempt of these chunks, under any extractor.

        Returns the number of cached results deleted.
        """
        wanted = sorted(set(chunk_hashes))
        deleted = 0
        for start in range(0, len(wanted), 5000):
            part = wanted[start : start + 5000]
            deleted += connection.execute(
                sa.delete(extraction_cache).where(extraction_cache.c.chunk_sha256.in_(part))
            ).rowcount
            connection.execute(
                sa.delete(extraction_attempts).where(extraction_attempts.c.chunk_sha256.in_(part))
            )
        return deleted

    def put_many(self, rows: Sequence[CacheRow]) -> None:
        """Store extractions; an existing key is left as it is. The keys' attempts are cleared."""
        if rows:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(_STORE, _store_params(rows))

    def writer(self) -> CacheWriter:
        """``put_many`` over one connection kept open: for many small writes in a row."""
        return CacheWriter(self.engine)

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

    def begin_attempt(self, keys: Sequence[tuple[str, str]]) -> None:
        """Count one more attempt for each ``(key, chunk hash)``, before the chunk is sent."""
        if not keys:
            return
        unique = sorted(set(keys))  # identical chunks share a key; one row may change only once
        statement = insert(extraction_attempts).values(
            [{"key": k, "attempts": 1, "chunk_sha256": sha} for k, sha in unique]
        )
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


class CacheWriter:
    """Stores extractions like ``ExtractionCache.put_many``, over one connection kept open.

    The LLM's workers wait for their result's write before sending the next request, so a write
    should cost one round trip: a pooled checkout pings the server first, a second one. When the
    connection was lost (the database restarted), the write is made once more on a new one; it
    is idempotent.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._connection: sa.Connection | None = None

    def __call__(self, rows: Sequence[CacheRow]) -> None:
        """Store ``rows`` in one statement; committed when this returns."""
        if not rows:
            return
        params = _store_params(rows)
        try:
            self._connected().execute(_STORE, params)
        except sa.exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            self.close()
            self._connected().execute(_STORE, params)

    def close(self) -> None:
        """Return the connection to the pool."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connected(self) -> sa.Connection:
        if self._connection is None:
            connection = self._engine.connect()
            self._connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        return self._connection


def _store_params(rows: Sequence[CacheRow]) -> dict[str, list[str]]:
    """``_STORE``'s arrays; results as JSON text from pydantic, not dicts to encode again."""
    return {
        "keys": [cache_key(chunk, info) for chunk, info, _ in rows],
        "extractors": [info.name for _, info, _ in rows],
        "versions": [info.version for _, info, _ in rows],
        "config_hashes": [info.config_hash for _, info, _ in rows],
        "chunk_hashes": [chunk.sha256 for chunk, _, _ in rows],
        "results": [payload for _, _, payload in rows],
    }


@dataclass(frozen=True)
class Attempts:
    """How often a chunk was sent to the extractor without its result being cached."""

    count: int
    last_error: str | None


@dataclass
class ExtractionStats:
    """How a batch's chunks were served, and the seconds spent waiting for the extractor."""

    chunks: int = 0
    cache_hits: int = 0
    extractor_calls: int = 0
    failures: int = 0
    extractor_seconds: float = 0.0


class GroupCommit:
    """Makes rows durable for many threads at once: one transaction per burst, not per row.

    ``put`` returns once its row is written. The first thread to arrive while no write is under
    way writes every row queued so far; threads arriving meanwhile queue theirs for the next
    write. At 32 answers arriving together this turns 32 transactions into a few.
    """

    def __init__(self, write: Callable[[list[CacheRow]], None]) -> None:
        self._write = write
        self._changed = threading.Condition()
        self._queued: list[CacheRow] = []
        self._collecting = 0  # number of the write the queued rows will go in
        self._written = -1  # number of the last finished write
        self._writing = False
        self._errors: dict[int, BaseException] = {}

    def put(self, row: CacheRow) -> None:
        """Queue ``row`` and return once a write holding it committed; raise if it failed."""
        with self._changed:
            self._queued.append(row)
            mine = self._collecting
            while self._written < mine:
                if self._writing:
                    self._changed.wait()
                else:
                    self._write_queued()
            error = self._errors.get(mine)
        if error is not None:
            raise CheckpointError(f"checkpoint write failed: {error}") from error

    def _write_queued(self) -> None:
        """Write every queued row; called, and returns, with the condition's lock held."""
        rows, self._queued = self._queued, []
        number, self._writing = self._collecting, True
        self._collecting += 1
        self._changed.release()
        try:
            self._write(rows)
        except Exception as error:
            self._errors[number] = error
        finally:
            self._changed.acquire()
            self._written, self._writing = number, False
            self._changed.notify_all()


class CheckpointError(RuntimeError):
    """Extraction results could not be stored; the extraction stops rather than lose them."""


class CachedExtraction:
    """Serves chunks from the cache, sends only misses to the extractor, checkpoints as it goes.

    Results are flushed every ``flush_every`` chunks or ``flush_seconds``, so a crash loses at most
    the chunks in flight plus one unflushed group. A ``CheckpointingExtractor`` (the LLM) instead
    stores each result from the worker that got it, through a ``GroupCommit``, before that worker
    takes another chunk: a crash loses at most the requests in flight, and answers arriving
    together share one transaction.

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
        # Cheap extractors amortise the write; costly ones (LLM calls) store every result from
        # their workers (``CheckpointingExtractor``), so ``flush_every`` does not apply to them.
        self.flush_every = flush_every or int(getattr(extractor, "checkpoint_every", 32))
        self.flush_seconds = flush_seconds
        self.group_size = group_size or int(getattr(extractor, "group_size", 64))
        self.max_attempts = max_attempts
        self.stats = ExtractionStats()

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkResult]:
        """Yield one result per chunk: cached ones first, then fresh ones as they complete."""
        info = cache_identity(self.extractor)
        self.stats.chunks += len(chunks)
        cached = self.cache.get_many(cache_key(c, info) for c in chunks)
        misses: list[Chunk] = []
        for chunk in chunks:
            hit = cached.get(cache_key(chunk, info))
            if hit is None:
                misses.append(chunk)
                continue
            self.stats.cache_hits += 1
            yield ChunkResult(chunk_id=chunk.id, extraction=self._read(chunk, hit), from_cache=True)
        yield from self._extract(misses, info)

    def _read(self, chunk: Chunk, payload: RawOutput) -> ChunkExtraction:
        if isinstance(self.extractor, MappingExtractor):
            return self.extractor.map_raw(chunk, payload)
        return ChunkExtraction.model_validate(payload)

    def _extract(self, misses: list[Chunk], info: ExtractorInfo) -> Iterator[ChunkResult]:
        if not misses:
            return
        earlier = self.cache.attempts(cache_key(c, info) for c in misses)
        given_up, suspects, fresh = self._plan(misses, info, earlier)
        for result in given_up:
            self.stats.failures += 1
            yield result
        by_id = {c.id: c for c in misses}
        if isinstance(self.extractor, CheckpointingExtractor):
            results = self._streamed(self.extractor, suspects, fresh, info, by_id)
        else:
            results = self._grouped([*suspects, *fresh], info, by_id)
        for result in _timed(results, self.stats):
            self.stats.extractor_calls += 1
            if result.extraction is None:
                self.stats.failures += 1
                key = cache_key(by_id[result.chunk_id], info)
                self.cache.record_error([key], result.error or "failed")
            yield result

    def _plan(
        self, misses: list[Chunk], info: ExtractorInfo, earlier: dict[str, Attempts]
    ) -> tuple[list[ChunkResult], list[list[Chunk]], list[list[Chunk]]]:
        """Chunks given up, suspect groups (smaller after each failed attempt), fresh groups."""
        given_up: list[ChunkResult] = []
        fresh: list[Chunk] = []
        suspects: dict[int, list[Chunk]] = {}
        for chunk in misses:
            attempt = earlier.get(cache_key(chunk, info))
            if attempt is None:
                fresh.append(chunk)
            elif attempt.count >= self.max_attempts:
                given_up.append(_given_up(chunk, attempt))
            else:
                suspects.setdefault(attempt.count, []).append(chunk)
        suspect_groups = [
            group
            for count, chunks in sorted(suspects.items())
            for group in _split(chunks, max(1, self.group_size >> (3 * count)))  # 64 → 8 → 1
        ]
        return given_up, suspect_groups, list(_split(fresh, self.group_size))

    def _grouped(
        self, groups: list[list[Chunk]], info: ExtractorInfo, by_id: dict[str, Chunk]
    ) -> Iterator[ChunkResult]:
        """One group at a time through the extractor; successes flushed here, amortised."""
        pending: list[CacheRow] = []
        last_flush = time.monotonic()
        try:
            for group in groups:
                keys = self._begin(group, info)
                try:
                    for result, payload in self._results(group):
                        if payload is not None:
                            pending.append((by_id[result.chunk_id], info, payload))
                        if self._flush_due(pending, last_flush):
                            self.cache.put_many(pending)
                            pending, last_flush = [], time.monotonic()
                        yield result
                except Exception as exc:
                    self.cache.record_error(keys, f"{type(exc).__name__}: {exc}")
                    raise
        finally:
            self.cache.put_many(pending)

    def _results(self, group: list[Chunk]) -> Iterator[tuple[ChunkResult, str | None]]:
        """Each chunk's result and the JSON to cache for it (None for a failure)."""
        extractor = self.extractor
        if isinstance(extractor, MappingExtractor):
            by_id = {c.id: c for c in group}
            for raw in extractor.extract_raw(group):
                if raw.raw is None:
                    yield ChunkResult(chunk_id=raw.chunk_id, error=raw.error, usage=raw.usage), None
                    continue
                extraction = extractor.map_raw(by_id[raw.chunk_id], raw.raw)
                result = ChunkResult(chunk_id=raw.chunk_id, extraction=extraction, usage=raw.usage)
                yield result, json.dumps(raw.raw, ensure_ascii=False, separators=(",", ":"))
            return
        for result in extractor.extract(group):
            payload = result.extraction.model_dump_json() if result.extraction else None
            yield result, payload

    def _streamed(
        self,
        extractor: CheckpointingExtractor,
        suspects: list[list[Chunk]],
        fresh: list[list[Chunk]],
        info: ExtractorInfo,
        by_id: dict[str, Chunk],
    ) -> Iterator[ChunkResult]:
        """Suspect groups one by one, then every fresh group as one stream.

        A poison chunk must not take neighbours down with it, so a suspect group is alone in
        flight. Fresh groups need no such barrier: a slot freed at the end of one group takes the
        first chunk of the next instead of idling until the whole group is done.
        """
        writer = self.cache.writer()
        commit = GroupCommit(writer)

        def checkpoint(result: ChunkResult) -> None:
            if result.extraction is not None:
                commit.put((by_id[result.chunk_id], info, result.extraction.model_dump_json()))

        try:
            for groups in [*([group] for group in suspects), fresh]:
                yield from self._stream(extractor, groups, info, checkpoint)
        finally:
            writer.close()

    def _stream(
        self,
        extractor: CheckpointingExtractor,
        groups: list[list[Chunk]],
        info: ExtractorInfo,
        checkpoint: Callable[[ChunkResult], None],
    ) -> Iterator[ChunkResult]:
        begun: list[Chunk] = []

        def pulled() -> Iterator[Chunk]:
            # Pulled by the extractor's workers, one chunk at a time: a group's attempt is
            # counted when its first chunk is about to be sent.
            for group in groups:
                self._begin(group, info)
                begun.extend(group)
                yield from group

        done: set[str] = set()
        try:
            for result in extractor.extract_checkpointed(pulled(), checkpoint):
                done.add(result.chunk_id)
                yield result
        except Exception as exc:
            unfinished = [cache_key(c, info) for c in begun if c.id not in done]
            self.cache.record_error(unfinished, f"{type(exc).__name__}: {exc}")
            raise

    def _begin(self, group: list[Chunk], info: ExtractorInfo) -> list[str]:
        """Count an attempt for each chunk of ``group``, before any of them is sent."""
        keys = [cache_key(c, info) for c in group]
        self.cache.begin_attempt([(cache_key(c, info), c.sha256) for c in group])
        for chunk in group:
            failpoint(f"poison.{chunk.sha256[:16]}")  # a chunk that crashes every attempt
        return keys

    def _flush_due(self, pending: Sequence[object], last_flush: float) -> bool:
        due = time.monotonic() - last_flush >= self.flush_seconds
        return len(pending) >= self.flush_every or bool(pending and due)


def _timed(results: Iterator[ChunkResult], stats: ExtractionStats) -> Iterator[ChunkResult]:
    """``results``, adding the seconds spent producing them (not consuming them) to ``stats``."""
    began = time.perf_counter()
    for result in results:
        stats.extractor_seconds += time.perf_counter() - began
        yield result
        began = time.perf_counter()
    stats.extractor_seconds += time.perf_counter() - began


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
