"""``ExtractionPipeline``: the direct path, every stage in this process, no Dagster."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from knowledge_assets.db.engine import get_engine
from knowledge_assets.db.migrate import ensure_migrated
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.cache import CachedExtraction, ExtractionCache
from knowledge_assets.pipeline.cost import document_costs
from knowledge_assets.pipeline.documents import document_name, read_paths
from knowledge_assets.pipeline.extractors.base import Extractor
from knowledge_assets.pipeline.extractors.factory import build_extractor
from knowledge_assets.pipeline.lifecycle.apply import Recompute, delete
from knowledge_assets.pipeline.lifecycle.forget import forget_files
from knowledge_assets.pipeline.lifecycle.requests import request_deletion
from knowledge_assets.pipeline.lifecycle.versions import register, versions_of
from knowledge_assets.pipeline.models import Batch, DocumentInput, DocumentRejection
from knowledge_assets.pipeline.object_store import storage_root
from knowledge_assets.pipeline.ontology import Ontology, load_ontology
from knowledge_assets.pipeline.registry.matching import Matcher
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.pipeline.validation import load_shapes
from knowledge_assets.settings import Settings


@dataclass
class PipelineResult:
    """What a run did, in the counts a person (or ``--json``) wants."""

    batch_id: str
    documents: int
    rejected: int
    chunks: int
    mentions: int
    entities: int
    relations: int
    quarantined: int
    extractor_calls: int
    cache_hits: int
    inserted_rows: int
    inserted: dict[str, int] = field(default_factory=dict)
    retracted_rows: int = 0
    retracted: dict[str, int] = field(default_factory=dict)
    superseded: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    rejections: list[dict[str, str]] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


class ExtractionPipeline:
    """Runs prepare → chunk → extract → resolve → validate → ingest on one batch.

    Heavy parts (engine, ontology, extractor model) are built once per pipeline and reused for
    every batch it runs.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        engine: sa.Engine | None = None,
        ontology: Ontology | None = None,
        extractor: Extractor | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.engine = engine or get_engine(self.settings)
        ensure_migrated(self.engine)
        self.ontology = ontology or load_ontology(self.settings.ontology)
        self.shapes = load_shapes(self.settings.shapes) if self.settings.shapes else None
        self.extractor = extractor or build_extractor(self.settings, self.ontology)
        self.store = GraphStore(self.engine)
        self.cache = ExtractionCache(self.engine)

    def run_paths(self, paths: Sequence[Path]) -> PipelineResult:
        """Read files and folders, then run them as one batch (refused files are reported)."""
        items, refused = read_paths(paths, max_bytes=self.settings.max_document_bytes)
        return self.run(items, refused=refused)

    def run(
        self, items: Sequence[DocumentInput], *, refused: Sequence[DocumentRejection] = ()
    ) -> PipelineResult:
        """Run one batch through every stage and ingest it."""
        seconds: dict[str, float] = {}
        s = self.settings
        with self._stage("prepare", seconds):
            prepared = stages.prepare(items, max_bytes=s.max_document_bytes, refused=refused)
        batch = Batch.create(
            prepared.documents, prepared.rejections, self.ontology.hash, self.extractor.info
        )
        self._submit(batch.id, prepared)
        with self._stage("chunk", seconds):
            chunks = stages.chunk(prepared, max_chars=s.chunk_max_chars)
        with self._stage("extract", seconds):
            extraction = CachedExtraction(self.cache, self.extractor)
            extractions = stages.extract(chunks, extraction)
        with self._stage("resolve", seconds):
            resolved = stages.resolve(
                batch.id, prepared, chunks, extractions, self.ontology,
                threshold=s.resolution_threshold,
            )  # fmt: skip
        with self._stage("validate", seconds):
            validated = stages.validate(resolved, self.ontology, self.shapes)
        with self._stage("ingest", seconds):
            content = stages.content_of(batch.id, prepared, chunks, extractions)
            outcome = stages.ingest(self.store, content, validated, self.recompute)
        costs = document_costs(
            prepared.documents, chunks.chunks, extractions.results, extractions.extractor_seconds
        )
        return PipelineResult(
            batch_id=batch.id,
            documents=len(prepared.documents),
            rejected=len(prepared.rejections),
            chunks=len(chunks.chunks),
            mentions=len(validated.mentions),
            entities=len(validated.entities),
            relations=len(validated.relations),
            quarantined=len(validated.quarantined),
            extractor_calls=extractions.extractor_calls,
            cache_hits=extractions.cache_hits,
            inserted_rows=outcome.changes.total_added,
            inserted=dict(outcome.changes.added),
            retracted_rows=outcome.changes.total_removed,
            retracted=dict(outcome.changes.removed),
            superseded=outcome.superseded,
            prompt_tokens=sum(c.prompt_tokens for c in costs),
            completion_tokens=sum(c.completion_tokens for c in costs),
            seconds=seconds,
            rejections=[r.model_dump() for r in prepared.rejections],
            costs=[c.model_dump() for c in costs],
        )

    @property
    def recompute(self) -> Recompute:
        """How this pipeline resolves a batch again from the graph store."""
        return stages.recompute(
            self.ontology,
            self.shapes,
            threshold=self.settings.resolution_threshold,
            max_chars=self.settings.chunk_max_chars,
        )

    def _submit(self, batch_id: str, prepared: stages.PreparedDocuments) -> None:
        """Register the batch's document versions: running it is submitting it."""
        with self.engine.begin() as connection:
            register(connection, batch_id, [(d.name, d.id, d.sha256) for d in prepared.documents])

    def close(self) -> None:
        """Release the extractor's clients."""
        self.extractor.close()

    @staticmethod
    @contextmanager
    def _stage(name: str, seconds: dict[str, float]) -> Iterator[None]:
        began = time.perf_counter()
        yield
        seconds[name] = round(time.perf_counter() - began, 3)


@dataclass
class DirectDeletion:
    """What ``delete_directly`` did: the deletion, its counts, and what it forgot."""

    deletion_id: str | None
    deleted: list[str]
    earlier: dict[str, str]
    retracted: dict[str, int] = field(default_factory=dict)
    forgotten_cache_entries: int = 0
    forgotten_blobs: int = 0
    forgotten_inbox_copies: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def delete_directly(settings: Settings, names: Sequence[str]) -> DirectDeletion:
    """Delete documents in this process (no Dagster), as the platform's deletion run does.

    Raises:
        UnknownDocuments: a name was never submitted.
    """
    engine = get_engine(settings)
    request = request_deletion(engine, names)
    if request.deletion_id is None:
        return DirectDeletion(None, [], request.earlier)
    ontology = load_ontology(settings.ontology)
    shapes = load_shapes(settings.shapes) if settings.shapes else None
    recompute = stages.recompute(
        ontology,
        shapes,
        threshold=settings.resolution_threshold,
        max_chars=settings.chunk_max_chars,
    )
    matcher = Matcher(LabelRules(ontology), settings.resolution_threshold)
    outcome = delete(engine, request.deletion_id, recompute, matcher)
    storage = BatchStorage(storage_root(settings))
    files = forget_files(storage, settings.inbox_dir, outcome.forgotten)
    return DirectDeletion(
        deletion_id=request.deletion_id,
        deleted=outcome.deleted,
        earlier=request.earlier,
        retracted=dict(outcome.changes.removed),
        forgotten_cache_entries=outcome.forgotten_cache_entries,
        forgotten_blobs=len(files.blobs),
        forgotten_inbox_copies=len(files.inbox_copies),
    )


def platform_documents(settings: Settings, names: Sequence[str]) -> list[str]:
    """The names with a version the platform staged (its bytes and stored values exist)."""
    storage = BatchStorage(storage_root(settings))
    with get_engine(settings).connect() as connection:
        versions = versions_of(connection, [document_name(n) for n in names])
    return sorted(
        {v.name for v in versions if not v.deleted and storage.manifest_path(v.batch_id).is_file()}
    )
