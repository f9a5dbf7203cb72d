"""The offline default extractor: spaCy's statistical NER plus ontology-guided relation patterns."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from functools import cache
from importlib import metadata
from typing import Any

from knowledge_assets.pipeline.extractors.patterns import RelationPatterns
from knowledge_assets.pipeline.models import (
    Chunk,
    ChunkExtraction,
    ChunkResult,
    ExtractedMention,
    ExtractorInfo,
)
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.settings import Settings

RULES_VERSION = "2"  # 2: relation direction by voice and types; nearest arguments
# The parser and sentence recogniser are not needed: chunks are already sentence-aligned and
# relation patterns read lemmas, which the tagger and lemmatizer provide.
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


def offline_extractor_info(settings: Settings, ontology: Ontology) -> ExtractorInfo:
    """The offline extractor's identity, known without loading the model (cheap to submit)."""
    try:
        model_version = metadata.version(settings.spacy_model)
    except metadata.PackageNotFoundError:
        model_version = "missing"
    config = "\x1f".join([ontology.hash, settings.spacy_model, *EXCLUDED_COMPONENTS, RULES_VERSION])
    return ExtractorInfo(
        name=f"spacy:{settings.spacy_model}",
        version=f"{model_version}+rules{RULES_VERSION}",
        config_hash=hashlib.sha256(config.encode("utf-8")).hexdigest()[:16],
    )


class SpacyExtractor:
    """Named entities from spaCy mapped onto ontology classes; relations from trigger patterns."""

    def __init__(self, settings: Settings, ontology: Ontology) -> None:
        self.settings = settings
        self.ontology = ontology
        self._info = offline_extractor_info(settings, ontology)
        self.nlp = load_model(settings.spacy_model)
        self.patterns = RelationPatterns(ontology)

    @property
    def info(self) -> ExtractorInfo:
        """Model name and version plus our rules version and the ontology hash."""
        return self._info

    def extract(self, chunks: Sequence[Chunk]) -> Iterator[ChunkResult]:
        """Run the model over all chunks in batches, yielding results in input order."""
        docs = self.nlp.pipe(
            (c.text for c in chunks),
            batch_size=self.settings.spacy_batch_size,
            n_process=self.settings.spacy_processes,
        )
        for chunk, doc in zip(chunks, docs, strict=True):
            yield ChunkResult(chunk_id=chunk.id, extraction=self._extract_doc(doc))

    def _extract_doc(self, doc: Any) -> ChunkExtraction:
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

    def close(self) -> None:
        """Nothing to release: the model stays loaded for the next batch in this process."""
