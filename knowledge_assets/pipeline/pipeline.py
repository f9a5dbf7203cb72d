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
from knowledge_assets.pipeline.cache import CachedExtraction, ExtractionCache
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.pipeline.extractors.base import Extractor
from knowledge_assets.pipeline.extractors.factory import build_extractor
from knowledge_assets.pipeline.models import Batch, DocumentInput, DocumentRejection
from knowledge_assets.pipeline.ontology import Ontology, load_ontology
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
    seconds: dict[str, float] = field(default_factory=dict)
    rejections: list[dict[str, str]] = field(default_factory=list)

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
            report = stages.ingest(self.store, batch.id, prepared, validated)
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
            inserted_rows=report.total,
            inserted=report.inserted,
            seconds=seconds,
            rejections=[r.model_dump() for r in prepared.rejections],
        )

    def close(self) -> None:
        """Release the extractor's clients."""
        self.extractor.close()

    @staticmethod
    @contextmanager
    def _stage(name: str, seconds: dict[str, float]) -> Iterator[None]:
        began = time.perf_counter()
        yield
        seconds[name] = round(time.perf_counter() - began, 3)
