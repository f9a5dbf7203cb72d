"""``python -m bench.crowd extract|resolve FILE``: one stage of the 50,000-name document.

Each stage runs in a fresh process so its peak resident memory is its own (imports, the batch's
data and the stage's work), and prints one JSON line. ``extract`` makes the document
(``bench.names``), prepares, chunks and extracts it with the configured (offline) extractor into
a scratch database, and pickles what resolution needs into FILE; ``resolve`` reads FILE and runs
the resolve stage (propagation and in-batch resolution) as the ``resolved_entities`` asset does.
"""

from __future__ import annotations

import json
import pickle
import resource
import sys
import time
from typing import Any

from bench.names import crowd_document
from knowledge_assets.db.scratch import scratch_engine
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.cache import CachedExtraction, ExtractionCache
from knowledge_assets.pipeline.extractors.factory import build_extractor
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.settings import Settings

NAMES = 50_000


def extract(path: str) -> dict[str, Any]:
    """Prepare, chunk and extract the document; pickle the stage inputs of ``resolve``."""
    settings = Settings()
    ontology = load_ontology(settings.ontology)
    data = crowd_document(NAMES).encode()
    with scratch_engine(settings, prefix="ka_bench") as engine:
        began = time.perf_counter()
        prepared = stages.prepare(
            [DocumentInput(name="crowd", data=data)], max_bytes=settings.max_document_bytes
        )
        chunks = stages.chunk(prepared, max_chars=settings.chunk_max_chars)
        extractor = build_extractor(settings, ontology)
        extractions = stages.extract(chunks, CachedExtraction(ExtractionCache(engine), extractor))
        seconds = time.perf_counter() - began
        extractor.close()
    with open(path, "wb") as sink:
        pickle.dump((prepared, chunks, extractions, settings.resolution_threshold), sink)
    return {"seconds": seconds, "bytes": len(data), "chunks": len(chunks.chunks)}


def resolve(path: str) -> dict[str, Any]:
    """Resolve the pickled batch as the ``resolved_entities`` asset would."""
    with open(path, "rb") as source:
        prepared, chunks, extractions, threshold = pickle.load(source)
    ontology = load_ontology(Settings().ontology)
    began = time.perf_counter()
    resolved = stages.resolve(
        "bcrowd", prepared, chunks, extractions, ontology, threshold=threshold
    )
    return {
        "seconds": time.perf_counter() - began,
        "mentions": len(resolved.mentions),
        "entities": len(resolved.entities),
    }


def main() -> None:
    """Run one stage and print its figures with the process's peak memory."""
    stage, path = sys.argv[1], sys.argv[2]
    figures = extract(path) if stage == "extract" else resolve(path)
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
