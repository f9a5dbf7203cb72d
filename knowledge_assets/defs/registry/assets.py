"""Cross-batch resolution: one unpartitioned asset over every ingested batch."""

import time

import dagster as dg
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.defs.extraction.assets import ingested_graph
from knowledge_assets.defs.resources import KnowledgeResource
from knowledge_assets.pipeline.registry import sync_registry


@dg.asset(
    deps=[ingested_graph],
    group_name="registry",
    kinds={"postgres"},
    automation_condition=dg.AutomationCondition.eager(),
)
def canonical_entities(knowledge: KnowledgeResource) -> dg.MaterializeResult:
    """The registry of canonical entities across all batches (one row = one real-world entity).

    Reads only batches not merged before; with nothing new it changes nothing. When a merged
    batch changed since (reprocessed, or a document left it), the registry is replayed
    (``registry.replay``). Each merge is recorded with its rule, score and evidence; wrong
    merges are undone with ``registry.split_entities`` and stay undone when this asset runs again.
    """
    began = time.perf_counter()
    engine = knowledge.engine()
    threshold = knowledge.settings().resolution_threshold
    report = sync_registry(engine, knowledge.ontology(), threshold=threshold)
    with engine.connect() as connection:
        total = connection.execute(
            sa.select(sa.func.count()).select_from(t.canonical_entities)
        ).scalar_one()
    return dg.MaterializeResult(
        metadata={
            "new_batches": len(report.batches),
            "entities_merged": report.entities,
            "joined_existing": report.joined,
            "canonical_created": report.created,
            "canonical_total": total,
            "replayed": report.replayed,
            # Work accounting, as every batch stage and deletion records it (docs/lifecycle.md).
            "seconds": round(time.perf_counter() - began, 3),
        }
    )
