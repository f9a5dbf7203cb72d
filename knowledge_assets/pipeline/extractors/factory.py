"""Choose the extractor named by configuration."""

from __future__ import annotations

from collections.abc import Callable

from knowledge_assets.pipeline.extractors.base import Extractor, RawOutput
from knowledge_assets.pipeline.models import Chunk, ChunkExtraction, ExtractorInfo
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.settings import ExtractorName, Settings


def build_extractor(
    settings: Settings, ontology: Ontology, name: ExtractorName | None = None
) -> Extractor:
    """The offline spaCy extractor or the LLM extractor, as ``name`` or the settings say."""
    chosen = name or settings.extractor
    if chosen == "offline":
        from knowledge_assets.pipeline.extractors.offline import SpacyExtractor

        return SpacyExtractor(settings, ontology)
    if chosen == "llm":
        from knowledge_assets.pipeline.extractors.llm import LLMExtractor

        return LLMExtractor(settings, ontology)
    raise ValueError(f"unknown extractor {chosen!r}: choose 'offline' or 'llm'")


def extractor_info(
    settings: Settings, ontology: Ontology, name: ExtractorName | None = None
) -> ExtractorInfo:
    """The chosen extractor's identity without loading models or opening connections."""
    chosen = name or settings.extractor
    if chosen == "offline":
        from knowledge_assets.pipeline.extractors.offline import offline_extractor_info

        return offline_extractor_info(settings, ontology)
    extractor = build_extractor(settings, ontology, chosen)
    try:
        return extractor.info
    finally:
        extractor.close()


PayloadReader = Callable[[Chunk, RawOutput], ChunkExtraction]
"""Turns what the cache holds for a chunk into the chunk's extraction."""


def payload_reader(cache_identity: ExtractorInfo, ontology: Ontology) -> PayloadReader:
    """How to read cached results stored under ``cache_identity``, without loading a model.

    The offline extractor's cache holds the model's raw output, mapped here onto ``ontology``;
    every other extractor's holds finished extractions.
    """
    if cache_identity.name.startswith("spacy:"):
        from knowledge_assets.pipeline.extractors.offline import OfflineMapper

        return OfflineMapper(ontology).map_raw
    return _finished


def _finished(chunk: Chunk, payload: RawOutput) -> ChunkExtraction:
    return ChunkExtraction.model_validate(payload)
