"""A living graph's costs: delete a document, update one, replay the registry, reprocess.

200 ecbplus-dev documents in 10 batches of 20 go through the direct pipeline (the registry
following each batch, as on the platform), then: one document of the first batch deleted
(its batch rebuilt without it, the registry replayed, its cache entries forgotten); one
document updated by a batch of its own; the registry replayed alone; every batch run again
under a changed ontology (the offline model's raw output reused: zero model calls). No target:
the figures say what a change costs against the extraction it avoids.
"""

from __future__ import annotations

import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import corpus_paths
from knowledge_assets.db.scratch import scratch_engine
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.pipeline.models import DocumentInput
from knowledge_assets.pipeline.pipeline import ExtractionPipeline, delete_directly
from knowledge_assets.pipeline.registry import sync_registry
from knowledge_assets.settings import Settings

DOCUMENTS = 200
BATCHES = 10


def run() -> dict[str, Any]:
    """Seconds of each change on the same graph, and the model calls the reprocess made."""
    items, _ = read_paths(corpus_paths(DOCUMENTS))
    size = len(items) // BATCHES
    batches = [items[n * size : (n + 1) * size] for n in range(BATCHES)]
    base = Settings()
    with scratch_engine(base, prefix="ka_bench") as engine:
        settings = base.model_copy(
            update={"database_url": engine.url.render_as_string(hide_password=False)}
        )
        pipeline = ExtractionPipeline(settings, engine=engine)
        began = time.perf_counter()
        for batch in batches:
            pipeline.run(batch)
            sync_registry(engine, pipeline.ontology)
        built = time.perf_counter() - began
        entities = _count(engine, "entities")

        began = time.perf_counter()
        deleted = delete_directly(settings, [batches[0][0].name])
        delete_s = time.perf_counter() - began

        edited = batches[0][1]
        new = DocumentInput(name=edited.name, data=edited.data + b"\nA final note was added.\n")
        began = time.perf_counter()
        pipeline.run([new])
        sync_registry(engine, pipeline.ontology)
        update_s = time.perf_counter() - began

        began = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE knowledge.registry_batches SET stale = true"))
        replay = sync_registry(engine, pipeline.ontology)
        replay_s = time.perf_counter() - began

        reprocess_s, calls, hits = _reprocess(settings, engine, batches)
    return {
        "benchmark": "lifecycle",
        "documents": len(items),
        "batches": len(batches),
        "entities": entities,
        "build_s": round(built, 2),
        "delete_one_document_s": round(delete_s, 2),
        "delete_rows_retracted": sum(deleted.retracted.values()),
        "update_one_document_s": round(update_s, 2),
        "registry_replay_s": round(replay_s, 2),
        "registry_replay_batches": len(replay.batches),
        "reprocess_after_ontology_change_s": round(reprocess_s, 2),
        "reprocess_model_calls": calls,
        "reprocess_cache_hits": hits,
        "met": calls == 0,
    }


def _reprocess(
    settings: Settings, engine: sa.Engine, batches: list[list[DocumentInput]]
) -> tuple[float, int, int]:
    """Every batch again under an ontology with one class more: seconds, model calls, hits."""
    default = resources.files("knowledge_assets.pipeline").joinpath("data/default_ontology.ttl")
    with tempfile.TemporaryDirectory() as folder:
        changed = Path(folder) / "ontology.ttl"
        changed.write_text(default.read_text(encoding="utf-8") + _CITY, encoding="utf-8")
        pipeline = ExtractionPipeline(
            settings.model_copy(update={"ontology": changed}), engine=engine
        )
        began = time.perf_counter()
        calls = hits = 0
        for batch in batches:
            result = pipeline.run(batch)
            calls, hits = calls + result.extractor_calls, hits + result.cache_hits
        sync_registry(engine, pipeline.ontology)
        return time.perf_counter() - began, calls, hits


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.text(f"SELECT count(*) FROM knowledge.{table}")).scalar_one()
        )


_CITY = """
news:City a owl:Class ;
    rdfs:subClassOf news:Place ;
    rdfs:label "City"@en ;
    ka:nerLabel "GPE" .
"""
