"""Extraction throughput: the offline extractor inside the pipeline vs the raw spaCy model."""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import alternate, corpus_paths, median_ratio
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.pipeline.extractors.offline import SpacyExtractor, load_model
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.settings import Settings

TARGET = 0.8


def run(documents: int = 200) -> dict[str, Any]:
    """Words per second of both paths on the same chunk texts, alternating, three pairs."""
    settings = Settings()
    items, _ = read_paths(corpus_paths(documents))
    prepared = stages.prepare(items, max_bytes=settings.max_document_bytes)
    chunks = stages.chunk(prepared, max_chars=settings.chunk_max_chars).chunks
    texts = [c.text for c in chunks]
    words = sum(len(t.split()) for t in texts)
    extractor = SpacyExtractor(settings, load_ontology())
    nlp = load_model(settings.spacy_model)

    def raw() -> None:
        for _ in nlp.pipe(texts, batch_size=settings.spacy_batch_size):
            pass

    def pipeline() -> None:
        for _ in extractor.extract(chunks):
            pass

    raw()  # warm-up: first call pays lazy initialisation on both paths
    base, cand = alternate(raw, pipeline)
    ratio = 1 / median_ratio(base, cand)
    return {
        "benchmark": "throughput",
        "documents": len(prepared.documents),
        "chunks": len(chunks),
        "words": words,
        "raw_words_per_s": round(words / statistics.median(base)),
        "pipeline_words_per_s": round(words / statistics.median(cand)),
        "ratio_pipeline_over_raw": round(ratio, 3),
        "target": f">= {TARGET}",
        "met": ratio >= TARGET,
        "processes": settings.spacy_processes,
    }
