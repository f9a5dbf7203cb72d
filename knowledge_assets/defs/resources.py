"""The one resource every asset uses: settings, database, ontology, extractor and storage."""

from __future__ import annotations

from functools import cache
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr

from knowledge_assets.db.engine import get_engine
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.extractors.base import Extractor
from knowledge_assets.pipeline.extractors.factory import build_extractor
from knowledge_assets.pipeline.inputs import PipelineInputs, pipeline_inputs
from knowledge_assets.pipeline.lifecycle.apply import Recompute
from knowledge_assets.pipeline.object_store import storage_root
from knowledge_assets.pipeline.ontology import Ontology, load_ontology
from knowledge_assets.pipeline.registry.matching import Matcher
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.pipeline.validation import load_shapes
from knowledge_assets.settings import Settings

__all__ = ["KnowledgeResource", "warm_up_extractor"]


@cache
def _extractor(settings_json: str) -> Extractor:
    # Keyed by the settings' JSON: one model load per process and configuration, shared by
    # every step and run the process executes.
    settings = Settings.model_validate_json(settings_json)
    return build_extractor(settings, load_ontology(settings.ontology))


@cache
def _inputs(settings_json: str) -> PipelineInputs:
    settings = Settings.model_validate_json(settings_json)
    return pipeline_inputs(settings, load_ontology(settings.ontology))


def warm_up_extractor(settings: Settings) -> dict[str, Any]:
    """Load the configured extractor now (a warm process pays the model load once)."""
    try:
        _extractor(settings.model_dump_json())
    except Exception as exc:  # a run reports a missing model itself, clearly
        return {"model_error": f"{type(exc).__name__}: {exc}"}
    return {"extractor": settings.extractor}


class KnowledgeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Gives assets the same pieces the direct pipeline uses, built once per process.

    Settings are read from ``KNOWLEDGE_*`` environment variables once per execution (a run, a
    sensor tick), never at import time, and passed to every piece built from them.
    """

    _settings: Settings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Read the settings once for the run (or sensor tick) that uses the resource."""
        self._settings = Settings()

    def settings(self) -> Settings:
        """The execution's settings (read now when called outside an execution)."""
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    def engine(self) -> sa.Engine:
        """The process-wide engine, migrated."""
        return get_engine(self.settings())

    def ontology(self) -> Ontology:
        """The configured ontology (parsed once per process for the built-in one)."""
        return load_ontology(self.settings().ontology)

    def shapes(self) -> Any:
        """The configured SHACL shapes, or None to generate them from the ontology."""
        path = self.settings().shapes
        return load_shapes(path) if path else None

    def extractor(self) -> Extractor:
        """The configured extractor, loaded once per process."""
        return _extractor(self.settings().model_dump_json())

    def store(self) -> GraphStore:
        """The graph store."""
        return GraphStore(self.engine())

    def batches(self) -> BatchStorage:
        """Where staged batches live (a local folder or the shared object store)."""
        return BatchStorage(storage_root(self.settings()))

    def inputs(self) -> PipelineInputs:
        """The configured inputs' fingerprints, recorded on every materialization."""
        return _inputs(self.settings().model_dump_json())

    def recompute(self) -> Recompute:
        """How a batch is resolved again from the graph store (after a document left it)."""
        settings = self.settings()
        return stages.recompute(
            self.ontology(),
            self.shapes(),
            threshold=settings.resolution_threshold,
            max_chars=settings.chunk_max_chars,
        )

    def matcher(self) -> Matcher:
        """The registry's matcher under the configured ontology and threshold."""
        return Matcher(LabelRules(self.ontology()), self.settings().resolution_threshold)
