"""The per-batch assets, one per pipeline stage, each partitioned by batch id.

Each asset is a thin wrapper around a stage function of ``pipeline/stages.py`` (the direct
pipeline calls the same functions) and reports its ``StageCounts`` as metadata.
"""

import time
from collections.abc import Iterator
from typing import Any

import dagster as dg

from knowledge_assets.defs.extraction.checks import (
    NO_QUARANTINE,
    NO_VIOLATIONS,
    SPANS_MATCH,
    quarantine_check,
    span_check,
    violation_check,
)
from knowledge_assets.defs.extraction.partitions import batch_partitions
from knowledge_assets.defs.resources import KnowledgeResource
from knowledge_assets.failpoints import failpoint
from knowledge_assets.instance.fencing import RunFence
from knowledge_assets.pipeline import stages
from knowledge_assets.pipeline.cache import CachedExtraction, ExtractionCache
from knowledge_assets.pipeline.models import ResolvedGraph, ValidatedGraph
from knowledge_assets.pipeline.progress import StageCounts, format_progress

GROUP = "extraction"
_COMMON: dict[str, Any] = {
    "partitions_def": batch_partitions,
    "group_name": GROUP,
    "io_manager_key": "json_io",
}
PROGRESS_EVERY_S = 1.0


@dg.asset(kinds={"python"}, **_COMMON)
def documents(context: dg.AssetExecutionContext, knowledge: KnowledgeResource) -> dg.Output:
    """The batch's accepted documents (one row = one decoded document) and the refused ones."""
    failpoint("documents.start")
    storage = knowledge.batches()
    manifest = storage.manifest(context.partition_key)
    prepared = stages.prepare(
        storage.inputs(manifest),
        max_bytes=knowledge.settings().max_document_bytes,
        refused=manifest.rejections,
    )
    failpoint("documents.end")
    counts = StageCounts(
        documents=len(prepared.documents),
        rejected=len(prepared.rejections),
        characters=sum(len(d.text) for d in prepared.documents),
    )
    return dg.Output(prepared, metadata=counts.metadata())


@dg.asset(kinds={"python"}, **_COMMON)
def chunks(knowledge: KnowledgeResource, documents: stages.PreparedDocuments) -> dg.Output:
    """Sentence-aligned chunks (one row = one chunk with exact offsets into its document)."""
    failpoint("chunks.start")
    chunk_set = stages.chunk(documents, max_chars=knowledge.settings().chunk_max_chars)
    failpoint("chunks.end")
    return dg.Output(chunk_set, metadata=StageCounts(chunks=len(chunk_set.chunks)).metadata())


@dg.asset(kinds={"python", "postgres"}, **_COMMON)
def extractions(
    context: dg.AssetExecutionContext, knowledge: KnowledgeResource, chunks: stages.ChunkSet
) -> dg.Output:
    """Mentions and relations per chunk, served from the per-chunk cache or the extractor."""
    failpoint("extractions.start")
    extraction = CachedExtraction(ExtractionCache(knowledge.engine()), knowledge.extractor())
    last = [0.0]

    def progress(done: int, total: int) -> None:
        failpoint("extractions.chunk")
        now = time.monotonic()
        if done == total or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            context.log.info(
                format_progress("extractions", done, total, extraction.stats.cache_hits)
            )

    result = stages.extract(chunks, extraction, progress)
    failpoint("extractions.end")
    counts = StageCounts(
        chunks=len(result.results),
        extractor_calls=result.extractor_calls,
        cache_hits=result.cache_hits,
        failed_chunks=result.failures,
        mentions=sum(len(r.extraction.mentions) for r in result.results if r.extraction),
        relations=sum(len(r.extraction.relations) for r in result.results if r.extraction),
    )
    extractor = f"{result.extractor.name} {result.extractor.version}"
    return dg.Output(result, metadata={**counts.metadata(), "extractor": extractor})


@dg.asset(
    kinds={"python"},
    check_specs=[dg.AssetCheckSpec(SPANS_MATCH, asset="resolved_entities")],
    **_COMMON,
)
def resolved_entities(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
    documents: stages.PreparedDocuments,
    chunks: stages.ChunkSet,
    extractions: stages.Extractions,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Entities of the batch after in-batch resolution (one row = one entity with its mentions)."""
    failpoint("resolved_entities.start")
    graph = stages.resolve(
        context.partition_key,
        documents,
        chunks,
        extractions,
        knowledge.ontology(),
        threshold=knowledge.settings().resolution_threshold,
    )
    failpoint("resolved_entities.end")
    counts = StageCounts(
        entities=len(graph.entities),
        mentions=len(graph.mentions),
        relations=len(graph.relations),
        quarantined=len(graph.quarantined),
    )
    yield dg.Output(graph, metadata=counts.metadata())
    yield span_check(documents, graph)


@dg.asset(
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(NO_VIOLATIONS, asset="validated_graph"),
        dg.AssetCheckSpec(NO_QUARANTINE, asset="validated_graph"),
    ],
    **_COMMON,
)
def validated_graph(
    knowledge: KnowledgeResource, resolved_entities: ResolvedGraph
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Facts that passed the ontology's SHACL shapes; the rest quarantined with the reason."""
    failpoint("validated_graph.start")
    graph = stages.validate(resolved_entities, knowledge.ontology(), knowledge.shapes())
    failpoint("validated_graph.end")
    counts = StageCounts(
        entities=len(graph.entities),
        relations=len(graph.relations),
        violations=graph.violations,
        quarantined=len(graph.quarantined),
    )
    yield dg.Output(graph, metadata=counts.metadata())
    yield violation_check(graph)
    yield quarantine_check(graph)


@dg.asset(kinds={"postgres"}, **_COMMON)
def ingested_graph(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
    documents: stages.PreparedDocuments,
    validated_graph: ValidatedGraph,
) -> dg.Output:
    """The batch upserted into the graph store (rows gained per table; zero on a re-run)."""
    failpoint("ingested_graph.start")
    fence = RunFence(context.instance, context.run_id, context.partition_key)
    report = stages.ingest(
        knowledge.store(), context.partition_key, documents, validated_graph, fence
    )
    failpoint("ingested_graph.end")
    summary = stages.IngestSummary(
        batch_id=context.partition_key,
        inserted=report.inserted,
        entities=len(validated_graph.entities),
        relations=len(validated_graph.relations),
        quarantined=len(validated_graph.quarantined),
    )
    new_rows = {f"new_{table}": rows for table, rows in report.inserted.items()}
    counts = StageCounts(rows_inserted=report.total)
    return dg.Output(summary, metadata={**counts.metadata(), **new_rows})


# In the order of the pipeline's STAGES (tests/test_definitions.py checks it).
BATCH_ASSETS = [documents, chunks, extractions, resolved_entities, validated_graph, ingested_graph]
