"""The per-batch assets, one per pipeline stage, each partitioned by batch id.

Each asset is a thin wrapper around a stage function of ``pipeline/stages.py`` (the direct
pipeline calls the same functions) and reports its ``StageCounts`` as metadata, with its
seconds, plus the fingerprints of the inputs it ran under (``PipelineInputs``): the stale list
compares those with the configured ones. The same fingerprint is each output's data version,
which the UI shows per partition.
"""

import time
import warnings
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
from knowledge_assets.pipeline.cost import COST_BY_DOCUMENT, document_costs
from knowledge_assets.pipeline.lifecycle.versions import forgotten_names
from knowledge_assets.pipeline.models import ResolvedGraph, ValidatedGraph
from knowledge_assets.pipeline.progress import StageCounts, format_progress

GROUP = "extraction"
_COMMON: dict[str, Any] = {
    "partitions_def": batch_partitions,
    "group_name": GROUP,
    "io_manager_key": "json_io",
}
PROGRESS_EVERY_S = 1.0


def _output(
    value: Any, knowledge: KnowledgeResource, counts: StageCounts, **extra: Any
) -> dg.Output:
    """The stage's value with its counts, extra metadata and the inputs it ran under."""
    inputs = knowledge.inputs()
    # ``data_version`` is marked beta in dagster 1.13 (pinned); it is what shows each
    # partition's inputs in the UI, so its warning is silenced here rather than in every run log.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(
            value,
            metadata={**counts.metadata(), **extra, **inputs.metadata()},
            data_version=dg.DataVersion(inputs.fingerprint),
        )


@dg.asset(kinds={"python"}, **_COMMON)
def documents(context: dg.AssetExecutionContext, knowledge: KnowledgeResource) -> dg.Output:
    """The batch's accepted documents (one row = one decoded document) and the refused ones.

    Documents a deletion forgot are left out: their bytes are gone, and must stay gone.
    """
    began = time.perf_counter()
    failpoint("documents.start")
    storage = knowledge.batches()
    manifest = storage.manifest(context.partition_key)
    with knowledge.engine().connect() as connection:
        deleted = forgotten_names(connection, context.partition_key)
    prepared = stages.prepare(
        storage.inputs(manifest, without=deleted),
        max_bytes=knowledge.settings().max_document_bytes,
        refused=manifest.rejections,
    )
    failpoint("documents.end")
    counts = StageCounts(
        documents=len(prepared.documents),
        rejected=len(prepared.rejections),
        documents_deleted=len(deleted & {e.name for e in manifest.documents}),
        characters=sum(len(d.text) for d in prepared.documents),
    )
    return _output(prepared, knowledge, counts.timed(began))


@dg.asset(kinds={"python"}, **_COMMON)
def chunks(knowledge: KnowledgeResource, documents: stages.PreparedDocuments) -> dg.Output:
    """Sentence-aligned chunks (one row = one chunk with exact offsets into its document)."""
    began = time.perf_counter()
    failpoint("chunks.start")
    chunk_set = stages.chunk(documents, max_chars=knowledge.settings().chunk_max_chars)
    failpoint("chunks.end")
    counts = StageCounts(chunks=len(chunk_set.chunks))
    return _output(chunk_set, knowledge, counts.timed(began))


@dg.asset(kinds={"python", "postgres"}, **_COMMON)
def extractions(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
    documents: stages.PreparedDocuments,
    chunks: stages.ChunkSet,
) -> dg.Output:
    """Mentions and relations per chunk, served from the per-chunk cache or the extractor.

    Its metadata says what extracting cost, for the batch and (``cost_by_document``) for each
    document: chunks sent to the extractor, cache hits, tokens, seconds.
    """
    began = time.perf_counter()
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
    costs = document_costs(
        documents.documents, chunks.chunks, result.results, result.extractor_seconds
    )
    counts = StageCounts(
        chunks=len(result.results),
        extractor_calls=result.extractor_calls,
        cache_hits=result.cache_hits,
        failed_chunks=result.failures,
        prompt_tokens=sum(c.prompt_tokens for c in costs),
        completion_tokens=sum(c.completion_tokens for c in costs),
        mentions=sum(len(r.extraction.mentions) for r in result.results if r.extraction),
        relations=sum(len(r.extraction.relations) for r in result.results if r.extraction),
    )
    return _output(
        result,
        knowledge,
        counts.timed(began),
        extractor=f"{result.extractor.name} {result.extractor.version}",
        **{COST_BY_DOCUMENT: dg.MetadataValue.json([c.model_dump() for c in costs])},
    )


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
    began = time.perf_counter()
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
    yield _output(graph, knowledge, counts.timed(began))
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
    began = time.perf_counter()
    failpoint("validated_graph.start")
    graph = stages.validate(resolved_entities, knowledge.ontology(), knowledge.shapes())
    failpoint("validated_graph.end")
    counts = StageCounts(
        entities=len(graph.entities),
        relations=len(graph.relations),
        violations=graph.violations,
        quarantined=len(graph.quarantined),
    )
    yield _output(graph, knowledge, counts.timed(began))
    yield violation_check(graph)
    yield quarantine_check(graph)


@dg.asset(kinds={"postgres"}, **_COMMON)
def ingested_graph(
    context: dg.AssetExecutionContext,
    knowledge: KnowledgeResource,
    documents: stages.PreparedDocuments,
    chunks: stages.ChunkSet,
    extractions: stages.Extractions,
    validated_graph: ValidatedGraph,
) -> dg.Output:
    """The batch's live documents applied to the graph store (rows changed; none on a re-run).

    A document a newer version overrides is left out (``documents_superseded``); one this batch
    brings a newer version of leaves the batch that held it, which is resolved again without it.
    """
    began = time.perf_counter()
    failpoint("ingested_graph.start")
    fence = RunFence(context.instance, context.run_id, context.partition_key)
    content = stages.content_of(context.partition_key, documents, chunks, extractions)
    outcome = stages.ingest(
        knowledge.store(), content, validated_graph, knowledge.recompute(), fence
    )
    failpoint("ingested_graph.end")
    changes = outcome.changes
    summary = stages.IngestSummary(
        batch_id=context.partition_key,
        inserted=dict(changes.added),
        retracted=dict(changes.removed),
        entities=len(validated_graph.entities),
        relations=len(validated_graph.relations),
        quarantined=len(validated_graph.quarantined),
        superseded=tuple(outcome.superseded),
        displaced=outcome.displaced,
    )
    counts = StageCounts(
        rows_inserted=changes.total_added,
        rows_retracted=changes.total_removed,
        documents_superseded=len(outcome.superseded),
    )
    per_table = {
        **{f"new_{table}": rows for table, rows in changes.added.items()},
        **{f"retracted_{table}": rows for table, rows in changes.removed.items()},
    }
    return _output(summary, knowledge, counts.timed(began), **per_table)


# In the order of the pipeline's STAGES (tests/test_definitions.py checks it).
BATCH_ASSETS = [documents, chunks, extractions, resolved_entities, validated_graph, ingested_graph]
