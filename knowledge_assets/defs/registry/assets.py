"""Cross-batch resolution: one unpartitioned asset over every ingested batch."""

import dagster as dg
import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.defs.extraction.assets import ingested_graph
from knowledge_assets.defs.resources import KnowledgeResource
from knowledge_assets.pipeline.registry import merge_new_batches


@dg.asset(
    deps=[ingested_graph],
    group_name="registry",
    kinds={"postgres"},
    automation_condition=dg.AutomationCondition.eager(),
)
def canonical_entities(knowledge: KnowledgeResource) -> dg.MaterializeResult:
    """The registry of canonical entities across all batches (one row = one real-world entity).

    Reads only batches not merged before; with nothing new it changes nothing. Each merge is
    recorded with its rule, score and evidence; wrong merges are undone with
    ``registry.split_entities`` and stay undone when this asset runs again.
    """
    engine = knowledge.engine()
    threshold = knowledge.settings().resolution_threshold
    report = merge_new_batches(engine, knowledge.ontology(), threshold=threshold)
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
        }
    )
