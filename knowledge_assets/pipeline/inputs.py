"""The inputs of a batch's graph besides its documents, each as a short fingerprint.

Every asset records them as materialization metadata (keys ``input_<field>``): a batch whose
recorded inputs differ from the configured ones is stale, and the difference says what
changed. ``PipelineInputs`` is the one source of the keys, as ``StageCounts`` is of the counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from importlib import metadata as package_metadata
from typing import Any

from knowledge_assets.pipeline.models import Frozen
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.settings import Settings

__all__ = ["INPUT_PREFIX", "InputChange", "PipelineInputs", "pipeline_inputs"]

INPUT_PREFIX = "input_"
_NONE = "none"


def _short(*parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class InputChange(Frozen):
    """One input whose fingerprint differs: as recorded on the batch, and as configured now."""

    recorded: str | None
    current: str


class PipelineInputs(Frozen):
    """Ontology, SHACL shapes, extractor (name and version), model, LLM prompt, settings.

    ``prompt`` is ``none`` for an extractor without one; ``settings`` covers the settings that
    shape the graph (chunk size, resolution threshold, largest document).
    """

    ontology: str
    shapes: str
    extractor: str
    model: str
    prompt: str
    settings: str

    def metadata(self) -> dict[str, str]:
        """The inputs as materialization metadata."""
        return {INPUT_PREFIX + key: value for key, value in self.model_dump().items()}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> dict[str, str]:
        """The inputs a materialization recorded (any subset; none before they were recorded)."""
        return {
            key: str(metadata[INPUT_PREFIX + key])
            for key in cls.model_fields
            if INPUT_PREFIX + key in metadata
        }

    def changes(self, recorded: Mapping[str, str]) -> dict[str, InputChange]:
        """Each input whose recorded fingerprint is not the current one (missing counts)."""
        return {
            key: InputChange(recorded=recorded.get(key), current=value)
            for key, value in self.model_dump().items()
            if recorded.get(key) != value
        }

    @property
    def fingerprint(self) -> str:
        """One hash of all inputs: the data version the assets report to Dagster."""
        return _short(*self.model_dump().values())


def pipeline_inputs(settings: Settings, ontology: Ontology) -> PipelineInputs:
    """The inputs as configured now, computed without loading a model or calling an endpoint."""
    if settings.extractor == "offline":
        from knowledge_assets.pipeline.extractors.offline import offline_extractor_info

        info = offline_extractor_info(settings, ontology)
        model = f"{settings.spacy_model} {_installed(settings.spacy_model)}"
        prompt = _NONE
    else:
        from knowledge_assets.pipeline.extractors.llm import LLMExtractor

        with LLMExtractor(settings, ontology) as extractor:
            info, prompt = extractor.info, extractor.prompt_hash[:16]
        model = settings.llm_model
    return PipelineInputs(
        ontology=ontology.hash[:16],
        shapes=_shapes(settings, ontology),
        extractor=f"{info.name} {info.version}",
        model=model,
        prompt=prompt,
        settings=_short(
            settings.chunk_max_chars, settings.resolution_threshold, settings.max_document_bytes
        ),
    )


def _shapes(settings: Settings, ontology: Ontology) -> str:
    """The shapes file's content hash, or the ontology's for shapes generated from it."""
    if settings.shapes is None:
        return _short("generated", ontology.hash)
    try:
        return _short("file", hashlib.sha256(settings.shapes.read_bytes()).hexdigest())
    except OSError as error:
        return _short("unreadable", settings.shapes, error.strerror)


def _installed(package: str) -> str:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return "missing"
