"""Mention recall of the offline extractor, through the pipeline and for the raw model."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from knowledge_assets.evaluation.gold import (
    GoldMention,
    doc_paths,
    gold_doc_id,
    load_gold_mentions,
    named_entity_mentions,
)
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.pipeline.extractors.offline import SpacyExtractor, load_model
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.settings import Settings

Spans = dict[str, list[tuple[int, int]]]


def evaluate_mention_recall(root: Path, settings: Settings) -> dict[str, Any]:
    """Share of gold named HUM/LOC/NON mentions overlapped by an extracted mention.

    The pipeline figure runs the real stages (decode, sentence-aware chunking, the offline
    extractor with its ontology mapping); the raw figure runs the same model over whole documents
    keeping every entity label, so any recall the pipeline loses shows as the difference.
    """
    gold = named_entity_mentions(load_gold_mentions(root))
    began = time.perf_counter()
    pipeline_spans, names = _pipeline_spans(root, settings)
    pipeline_seconds = time.perf_counter() - began
    raw_spans = _raw_spans(root, settings)
    return {
        "documents": len(names),
        "gold_named_mentions": len(gold),
        "pipeline_recall": round(_recall(gold, pipeline_spans), 4),
        "raw_model_recall": round(_recall(gold, raw_spans), 4),
        "pipeline_seconds": round(pipeline_seconds, 2),
    }


def _pipeline_spans(root: Path, settings: Settings) -> tuple[Spans, list[str]]:
    ontology = load_ontology(settings.ontology)
    extractor = SpacyExtractor(settings, ontology)
    items, _ = read_paths(doc_paths(root), max_bytes=settings.max_document_bytes)
    prepared = stages.prepare(items, max_bytes=settings.max_document_bytes)
    chunks = stages.chunk(prepared, max_chars=settings.chunk_max_chars)
    by_id = {c.id: c for c in chunks.chunks}
    names = {d.id: gold_doc_id(d.name) for d in prepared.documents}
    spans: Spans = defaultdict(list)
    for result in extractor.extract(chunks.chunks):
        chunk = by_id[result.chunk_id]
        for m in result.extraction.mentions if result.extraction else ():
            spans[names[chunk.document_id]].append((chunk.start + m.start, chunk.start + m.end))
    return spans, sorted(names.values())


def _raw_spans(root: Path, settings: Settings) -> Spans:
    nlp = load_model(settings.spacy_model)
    paths = doc_paths(root)
    texts = (p.read_text(encoding="utf-8") for p in paths)
    spans: Spans = defaultdict(list)
    for path, doc in zip(paths, nlp.pipe(texts, batch_size=32), strict=True):
        spans[path.stem] = [(e.start_char, e.end_char) for e in doc.ents]
    return spans


def _recall(gold: Iterable[GoldMention], predicted: Spans) -> float:
    gold = list(gold)
    if not gold:
        return 0.0
    found = sum(
        1
        for g in gold
        if any(start < g.end and g.start < end for start, end in predicted.get(g.doc_id, ()))
    )
    return found / len(gold)
