"""The deletion asset: one partition per deletion request, its counts in the metadata."""

import time

import dagster as dg

from knowledge_assets.defs.io_manager import PydanticJsonIOManager
from knowledge_assets.defs.lifecycle.partitions import deletion_partitions
from knowledge_assets.defs.lifecycle.stored import chunk_hashes, forget_stored
from knowledge_assets.defs.resources import KnowledgeResource
from knowledge_assets.failpoints import failpoint
from knowledge_assets.instance.fencing import RunFence
from knowledge_assets.pipeline.lifecycle.apply import delete
from knowledge_assets.pipeline.lifecycle.forget import forget_files
from knowledge_assets.pipeline.lifecycle.versions import forgotten_by
from knowledge_assets.pipeline.progress import DeletionCounts

__all__ = ["document_deletions"]


@dg.asset(partitions_def=deletion_partitions, group_name="lifecycle", kinds={"postgres"})
def document_deletions(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
    json_io: dg.ResourceParam[PydanticJsonIOManager],
) -> dg.MaterializeResult:
    """Documents deleted from the graph and forgotten (one partition = one deletion request).

    In one fenced transaction: each deleted document leaves the batch that held it, which is
    resolved again without it; the registry is replayed; its chunks' cached extractions go.
    Then its stored bytes, the stored asset values of every batch that held it and its inbox
    copies are forgotten. Running it again (a retry after a crash) finishes what is left.
    """
    began = time.perf_counter()
    deletion = context.partition_key
    failpoint("document_deletions.start")
    engine = knowledge.engine()
    with engine.connect() as connection:
        forgotten = forgotten_by(connection, deletion)
    values = json_io.values()
    by_batch: dict[str, set[str]] = {}
    for version in forgotten:
        by_batch.setdefault(version.batch_id, set()).add(version.name)
    hashes = {h for b, names in by_batch.items() for h in chunk_hashes(values, b, names)}
    fence = RunFence(context.instance, context.run_id, deletion)
    outcome = delete(engine, deletion, knowledge.recompute(), knowledge.matcher(), fence, hashes)
    failpoint("document_deletions.forget")
    rewritten = [
        path
        for batch_id, names in sorted(by_batch.items())
        for path in forget_stored(values, batch_id, names, knowledge).rewritten
    ]
    settings = knowledge.settings()
    files = forget_files(knowledge.batches(), settings.inbox_dir, forgotten)
    counts = DeletionCounts(
        documents_deleted=len(outcome.deleted),
        documents_superseded=len(outcome.superseded),
        versions_forgotten=len(forgotten),
        rows_retracted=outcome.changes.total_removed,
        rows_inserted=outcome.changes.total_added,
        cache_entries_forgotten=outcome.forgotten_cache_entries,
        blobs_forgotten=len(files.blobs),
        stored_values_rewritten=len(rewritten),
        inbox_copies_forgotten=len(files.inbox_copies),
        registry_replayed=int(outcome.registry.replayed),
        seconds=round(time.perf_counter() - began, 3),
    )
    return dg.MaterializeResult(
        metadata={
            **counts.metadata(),
            "documents": dg.MetadataValue.json(outcome.deleted),
            **{f"retracted_{table}": rows for table, rows in outcome.changes.removed.items()},
        }
    )
