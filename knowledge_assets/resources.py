"""The one resource every asset uses: settings, database, ontology, extractor and storage."""

from __future__ import annotations

from functools import cache

import dagster as dg
import sqlalchemy as sa

from knowledge_assets.db.engine import get_engine
from knowledge_assets.pipeline.batches import BatchStorage
from knowledge_assets.pipeline.extractors.base import Extractor
from knowledge_assets.pipeline.extractors.factory import build_extractor
from knowledge_assets.pipeline.ontology import Ontology, load_ontology
from knowledge_assets.pipeline.store import GraphStore
from knowledge_assets.settings import Settings


@cache
def _extractor(settings_json: str) -> Extractor:
    # Keyed by the settings' JSON: one model load per process and configuration, shared by
    # every step and run the process executes.
    settings = Settings.model_validate_json(settings_json)
    return build_extractor(settings, load_ontology(settings.ontology))


class KnowledgeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Gives assets the same pieces the direct pipeline uses, built once per process.

    Settings come from ``KNOWLEDGE_*`` environment variables when the resource is used, never at
    import time.
    """

    def settings(self) -> Settings:
        """Settings read from the environment now."""
        return Settings()

    def engine(self) -> sa.Engine:
        """The process-wide engine, migrated."""
        return get_engine(self.settings())

    def ontology(self) -> Ontology:
        """The configured ontology (parsed once per process for the built-in one)."""
        return load_ontology(self.settings().ontology)

    def extractor(self) -> Extractor:
        """The configured extractor, loaded once per process."""
        return _extractor(self.settings().model_dump_json())

    def store(self) -> GraphStore:
        """The graph store."""
        return GraphStore(self.engine())

    def batches(self) -> BatchStorage:
        """Where staged batches live."""
        return BatchStorage(self.settings().storage_dir)
