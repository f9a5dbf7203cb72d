"""A batch's ``BatchStatus`` assembled from Dagster's records, its manifest and the graph store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterRun, DagsterRunStatus, RunRecord

from knowledge_assets.db.tables import quarantine
from knowledge_assets.instance.dagster_internals import WILL_RETRY_TAG
from knowledge_assets.instance.leases import LeaseStore
from knowledge_assets.orchestration.state import (
    BatchState,
    BatchStatus,
    DocumentStatus,
    RunView,
    StageProgress,
    derive_state,
)
from knowledge_assets.pipeline.batches import BatchManifest
from knowledge_assets.pipeline.cost import COST_BY_DOCUMENT, BatchCost, DocumentCost
from knowledge_assets.pipeline.inputs import PipelineInputs
from knowledge_assets.pipeline.lifecycle.versions import Version, forgotten_names, live_versions
from knowledge_assets.pipeline.progress import STAGES, StageCounts, parse_progress

INTERRUPTED_TAG = "knowledge/interrupted"
_FAILURE_EVENTS = {DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
_PROGRESS_LOOKBACK = 200


def batch_status(
    instance: dg.DagsterInstance,
    engine: sa.Engine,
    manifest: BatchManifest,
    records: Sequence[RunRecord],
    inputs: PipelineInputs | None = None,
) -> BatchStatus:
    """Everything ``poll`` answers about one batch; ``records`` of its runs, oldest first.

    ``inputs`` are the configured inputs, to tell whether the batch is stale.
    """
    runs = [record.dagster_run for record in records]
    views = [run_view(instance, run) for run in runs]
    derived = derive_state(views)
    metadata = {stage: latest_metadata(instance, stage, manifest.batch_id) for stage in STAGES}
    counts = {stage: StageCounts.from_metadata(found) for stage, found in metadata.items()}
    recorded = PipelineInputs.from_metadata(metadata[STAGES[-1]])
    live = _live_progress(instance, runs[-1].run_id) if runs else None
    started, finished = _run_times(records, derived.state)
    begun = manifest.submitted_at or started
    return BatchStatus(
        batch_id=manifest.batch_id,
        state=derived.state,
        stage=derived.stage,
        progress=_progress(manifest, counts, live),
        error=derived.error,
        failed_stage=derived.failed_stage,
        last_successful_stage=derived.last_successful_stage,
        runs=[run.run_id for run in runs],
        workers=LeaseStore(engine).nodes([run.run_id for run in runs]),
        documents=_documents(engine, manifest),
        source=manifest.source,
        submitted_at=manifest.submitted_at,
        started_at=started,
        finished_at=finished,
        duration_s=round((finished - begun).total_seconds(), 3) if finished and begun else None,
        cost=batch_cost(counts, metadata["extractions"]),
        inputs=recorded,
        stale=inputs.changes(recorded) if inputs is not None and metadata[STAGES[-1]] else {},
    )


def batch_cost(counts: Mapping[str, StageCounts], extraction: Mapping[str, Any]) -> BatchCost:
    """The cost the batch's latest materializations recorded."""
    extracted = counts["extractions"]
    documents = extraction.get(COST_BY_DOCUMENT)
    return BatchCost(
        extractor_calls=extracted.extractor_calls or 0,
        cache_hits=extracted.cache_hits or 0,
        prompt_tokens=extracted.prompt_tokens or 0,
        completion_tokens=extracted.completion_tokens or 0,
        seconds={s: c.seconds for s, c in counts.items() if c.seconds is not None},
        documents=tuple(DocumentCost.model_validate(d) for d in documents if isinstance(d, dict))
        if isinstance(documents, list)
        else (),
    )


def _run_times(
    records: Sequence[RunRecord], state: BatchState
) -> tuple[datetime | None, datetime | None]:
    """When the batch's first run started, and when the run that ended the batch ended."""
    starts = [r.start_time for r in records if r.start_time is not None]
    started = _utc(min(starts)) if starts else None
    if state == BatchState.COMPLETE:
        ends = [r.end_time for r in records if r.dagster_run.status == DagsterRunStatus.SUCCESS]
    elif state == BatchState.FAILED:
        ends = [records[-1].end_time]
    else:
        ends = []
    ended = next((end for end in ends if end is not None), None)
    return started, _utc(ended) if ended is not None else None


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def run_view(instance: dg.DagsterInstance, run: DagsterRun) -> RunView:
    """The parts of a run the state machine reads."""
    steps = {
        stats.step_key: stats.status.value.lower()
        for stats in instance.get_run_step_stats(run.run_id)
        if stats.status is not None
    }
    error = _error(instance, run) if run.status == DagsterRunStatus.FAILURE else None
    return RunView(
        run_id=run.run_id,
        status=run.status.value,
        steps=steps,
        will_retry=_will_retry(instance, run),
        error=error,
        interrupted=run.tags.get(INTERRUPTED_TAG) == "true",
    )


def _will_retry(instance: dg.DagsterInstance, run: DagsterRun) -> bool | None:
    verdict = run.tags.get(WILL_RETRY_TAG)
    if verdict is not None:
        return verdict == "true"
    return (
        None if instance.run_retries_enabled and run.status == DagsterRunStatus.FAILURE else False
    )


def _error(instance: dg.DagsterInstance, run: DagsterRun) -> str | None:
    records = instance.get_records_for_run(run.run_id, of_type=_FAILURE_EVENTS).records
    for record in reversed(records):
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_FAILURE and event.step_failure_data:
            error = event.step_failure_data.error
            return f"{event.step_key}: {error.message.strip()}" if error else event.message
        return event.message or record.event_log_entry.user_message
    return None


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict[str, Any]:
    """The metadata of the asset's latest materialization of a partition (none yet: empty)."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    )
    materialization = result.records[0].asset_materialization if result.records else None
    if materialization is None:
        return {}
    return {k: v.value for k, v in materialization.metadata.items()}


def _live_progress(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any] | None:
    records = instance.get_records_for_run(
        run_id, ascending=False, limit=_PROGRESS_LOOKBACK
    ).records
    for record in records:
        payload = parse_progress(record.event_log_entry.user_message)
        if payload is not None:
            return payload
    return None


def _progress(
    manifest: BatchManifest,
    counts: Mapping[str, StageCounts],
    live: Mapping[str, Any] | None,
) -> StageProgress:
    extracted = counts["extractions"]
    chunks_total = counts["chunks"].chunks or 0
    if extracted.chunks is not None:
        done, reused = extracted.chunks, extracted.cache_hits or 0
    elif live is not None and live.get("stage") == "extractions":
        done, reused = int(live["done"]), int(live.get("reused", 0))
        chunks_total = chunks_total or int(live["total"])
    else:
        done, reused = 0, 0
    validated = counts["validated_graph"]
    graph = validated if validated.entities is not None else counts["resolved_entities"]
    return StageProgress(
        documents=len(manifest.documents),
        rejected=len(manifest.rejections),
        chunks_total=chunks_total,
        chunks_done=done,
        chunks_reused=reused,
        entities=graph.entities or 0,
        relations=graph.relations or 0,
        quarantined=validated.quarantined or 0,
    )


def _documents(engine: sa.Engine, manifest: BatchManifest) -> list[DocumentStatus]:
    statuses = [DocumentStatus(name=e.name, status="accepted") for e in manifest.documents]
    # The store records refusals in the quarantine table too; under a name that was also
    # accepted (a duplicate name), such a row is about the refused copy, not the kept one.
    refusals = {(r.name, r.reason) for r in manifest.rejections}
    held = {
        name: reason
        for name, reason in _quarantined_documents(engine, manifest.batch_id)
        if (name, reason) not in refusals
    }
    replaced = _replaced(engine, manifest)
    statuses = [
        replaced.get(s.name)
        or (
            DocumentStatus(name=s.name, status="quarantined", reason=held[s.name])
            if s.name in held
            else s
        )
        for s in statuses
    ]
    statuses += [
        DocumentStatus(name=r.name, status="refused", reason=r.reason) for r in manifest.rejections
    ]
    return sorted(statuses, key=lambda s: s.name)


def _quarantined_documents(engine: sa.Engine, batch_id: str) -> list[tuple[str, str]]:
    query = sa.select(quarantine.c.subject, quarantine.c.reason).where(
        quarantine.c.batch_id == batch_id, quarantine.c.kind == "document"
    )
    with engine.connect() as connection:
        return [(subject, reason) for subject, reason in connection.execute(query)]


def _replaced(engine: sa.Engine, manifest: BatchManifest) -> dict[str, DocumentStatus]:
    """The batch's documents whose live version is not this batch's: newer, or deleted."""
    names = [e.name for e in manifest.documents]
    with engine.connect() as connection:
        live = live_versions(connection, names)
        forgotten = forgotten_names(connection, manifest.batch_id)
    found = {}
    for name in names:
        version = live.get(name)
        if name in forgotten:
            found[name] = DocumentStatus(name=name, status="deleted", reason=_deleted(version))
        elif version is not None and version.batch_id != manifest.batch_id:
            reason = f"a newer version, submitted in batch {version.batch_id}, is the live one"
            found[name] = DocumentStatus(name=name, status="superseded", reason=reason)
    return found


def _deleted(version: Version | None) -> str:
    if version is not None and version.deleted:
        return f"deleted by {version.batch_id}"
    return "deleted, then submitted again in a later batch"
