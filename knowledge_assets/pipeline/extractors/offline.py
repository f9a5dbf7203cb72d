"""The offline default extractor: spaCy's statistical NER plus ontology-guided relation patterns.

It works in two steps. The model's raw output for a chunk (tokens with lemmas and tags, named
entities with spaCy's labels) does not depend on the ontology, so that is what the cache keeps;
the ontology is applied afterwards by ``OfflineMapper`` (labels onto classes, trigger patterns
onto properties), which needs no model. An ontology change therefore makes no model calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from functools import cache
from importlib import metadata
from typing import Any

from knowledge_assets.pipeline.extractors.base import RawOutput, RawResult
from knowledge_assets.pipeline.extractors.patterns import RelationPatterns
from knowledge_assets.pipeline.extractors.raw_doc import RawDoc, raw_output
from knowledge_assets.pipeline.models import (
    Chunk,
    ChunkExtraction,
    ChunkResult,
    ExtractedMention,
    ExtractorInfo,
    Usage,
)
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.settings import Settings

RULES_VERSION = "2"  # 2: relation direction by voice and types; nearest arguments
RAW_FORMAT = "1"
"""Version of the raw output's layout (``raw_doc.py``): part of its cache key."""
# The parser and sentence recogniser are not needed: chunks are already sentence-aligned and
# relation patterns read lemmas and tags, which the tagger and lemmatizer provide.
EXCLUDED_COMPONENTS = ("parser", "senter")


@cache
def load_model(name: str) -> Any:
    """Load a spaCy pipeline once per process: every step and run in the process reuses it."""
    import spacy

    try:
        return spacy.load(name, exclude=list(EXCLUDED_COMPONENTS))
    except OSError as exc:
        raise RuntimeError(
            f"spaCy model {name!r} is not installed; run `make install` "
            "(it installs the pinned model from requirements/model.txt)"
        ) from exc


def _model_version(settings: Settings) -> str:
    try:
        return metadata.version(settings.spacy_model)
    except metadata.PackageNotFoundError:
        return "missing"


def offline_extractor_info(settings: Settings, ontology: Ontology) -> ExtractorInfo:
    """The offline extractor's identity, known without loading the model (cheap to submit)."""
    config = "\x1f".join([ontology.hash, settings.spacy_model, *EXCLUDED_COMPONENTS, RULES_VERSION])
    return ExtractorInfo(
        name=f"spacy:{settings.spacy_model}",
        version=f"{_model_version(settings)}+rules{RULES_VERSION}",
        config_hash=hashlib.sha256(config.encode("utf-8")).hexdigest()[:16],
    )


def offline_raw_info(settings: Settings) -> ExtractorInfo:
    """The identity of the model's raw output: the model and its options, not the ontology."""
    config = "\x1f".join([settings.spacy_model, *EXCLUDED_COMPONENTS, f"raw{RAW_FORMAT}"])
    return ExtractorInfo(
        name=f"spacy:{settings.spacy_model}",
        version=_model_version(settings),
        config_hash=hashlib.sha256(config.encode("utf-8")).hexdigest()[:16],
    )


class OfflineMapper:
    """The ontology half of the offline extractor, over the raw output alone.

    spaCy's labels become classes (``ka:nerLabel``), trigger patterns become properties.
    """

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self.patterns = RelationPatterns(ontology)

    def map_raw(self, chunk: Chunk, raw: RawOutput) -> ChunkExtraction:
        """Mentions of the ontology's classes and the relations their triggers state."""
        return self.map_doc(RawDoc.parse(chunk.text, raw))

    def map_doc(self, doc: Any) -> ChunkExtraction:
        """The same from anything shaped like a spaCy ``Doc`` (a parsed one, or a ``RawDoc``)."""
        kept = []
        mentions = []
        for ent in doc.ents:
            label = self.ontology.class_for_ner_label(ent.label_)
            if label is None:
                continue
            kept.append(ent)
            mentions.append(
                ExtractedMention(start=ent.start_char, end=ent.end_char, text=ent.text, label=label)
            )
        relations = self.patterns.find(doc, kept, mentions)
        return ChunkExtraction(mentions=tuple(mentions), relations=tuple(relations))


class SpacyExtractor:
    """Named entities from spaCy mapped onto ontology classes; relations from trigger patterns."""

    def __init__(self, settings: Settings, ontology: Ontology) -> None:
        self.settings = settings
        self.ontology = ontology
        self._info = offline_extractor_info(settings, ontology)
        self._raw_info = offline_raw_info(settings)
        self.nlp = load_model(settings.spacy_model)
        self.mapper = OfflineMapper(ontology)

    @property
    def info(self) -> ExtractorInfo:
        """Model name and version plus our rules version and the ontology hash."""
        return self._info

    @property
    def raw_info(self) -> ExtractorInfo:
        """Model name, version and options: what the cached raw output depends on."""
        return self._raw_info

    def extract(self, chunks: Sequence[Chunk]) -> Iterator[ChunkResult]:
        """Run the model over all chunks in batches, yielding mapped results in input order."""
        by_id = {c.id: c for c in chunks}
        for result in self.extract_raw(chunks):
            assert result.raw is not None  # the model raises rather than failing one chunk
            yield ChunkResult(
                chunk_id=result.chunk_id,
                extraction=self.map_raw(by_id[result.chunk_id], result.raw),
                usage=result.usage,
            )

    def extract_raw(self, chunks: Sequence[Chunk]) -> Iterator[RawResult]:
        """The model's tokens and entities for every chunk, in input order.

        The model works on groups of chunks at once, so no chunk's own seconds are measured:
        its usage counts the call only (``Usage.seconds`` None).
        """
        docs = self.nlp.pipe(
            (c.text for c in chunks),
            batch_size=self.settings.spacy_batch_size,
            n_process=self.settings.spacy_processes,
        )
        for chunk, doc in zip(chunks, docs, strict=True):
            yield RawResult(chunk_id=chunk.id, raw=raw_output(doc), usage=Usage(requests=1))

    def map_raw(self, chunk: Chunk, raw: RawOutput) -> ChunkExtraction:
        """The chunk's extraction under this extractor's ontology."""
        return self.mapper.map_raw(chunk, raw)

    def close(self) -> None:
        """Nothing to release: the model stays loaded for the next batch in this process."""
