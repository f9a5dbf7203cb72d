"""Deletions and reprocessing on the platform: their states, derived from Dagster's records.

A deletion is a run of ``delete_documents`` on the deletion's partition; its state comes from
its runs exactly as a batch's does (a failure Dagster will retry is still Deleting). A
reprocess is one Dagster asset backfill over the stale batches' partitions; its state is the
backfill's. The stale list compares the input fingerprints each batch's latest
``ingested_graph`` materialization recorded with the configured ones.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum

import dagster as dg
from pydantic import Field

from knowledge_assets.defs.lifecycle.assets import document_deletions
from knowledge_assets.instance.dagster_internals import (
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
    backfill_state,
)
from knowledge_assets.instance.run_gate import ACTIVE_STATUSES
from knowledge_assets.orchestration.snapshot import latest_metadata, run_view
from knowledge_assets.pipeline.batches import BATCH_ID, BatchStorage, UnknownBatchError
from knowledge_assets.pipeline.inputs import InputChange, PipelineInputs
from knowledge_assets.pipeline.models import Frozen
from knowledge_assets.pipeline.progress import STAGES, DeletionCounts

__all__ = [
    "BatchesBusy",
    "DeletionState",
    "DeletionStatus",
    "DocumentsBusy",
    "Reprocess",
    "StaleBatch",
    "UnknownBackfill",
    "UnknownDeletion",
    "busy_batches",
    "deletion_status",
    "reprocess_status",
]

_TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class DocumentsBusy(RuntimeError):
    """A batch holding some of the documents is being processed: deleting now would race it."""

    def __init__(self, busy: Mapping[str, Collection[str]]) -> None:
        self.busy = {batch: sorted(names) for batch, names in sorted(busy.items())}
        listed = "; ".join(f"{', '.join(n)} in batch {b}" for b, n in self.busy.items())
        super().__init__(
            f"documents are being processed ({listed}); delete them once the batch is complete, "
            "or cancel it first (`knowledge cancel BATCH`)"
        )


class BatchesBusy(RuntimeError):
    """Some batches asked to be reprocessed are being processed right now."""

    def __init__(self, batches: Collection[str]) -> None:
        self.batches = sorted(batches)
        super().__init__(
            f"batches are being processed: {', '.join(self.batches)}; reprocess them once done"
        )


class UnknownDeletion(KeyError):
    """No deletion has this id."""


class UnknownBackfill(KeyError):
    """No reprocessing backfill has this id."""


class DeletionState(StrEnum):
    """Where a deletion is: queued, running (or being retried), done, or failed for good."""

    PENDING = "pending"
    DELETING = "deleting"
    COMPLETE = "complete"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """Whether nothing more happens without a user."""
        return self in (DeletionState.COMPLETE, DeletionState.FAILED)


class DeletionStatus(Frozen):
    """A deletion: the documents it deletes, its state, runs and what it did.

    ``earlier`` names documents an earlier deletion had deleted already (asked again).
    """

    deletion_id: str
    state: DeletionState
    documents: list[str] = Field(default_factory=list)
    earlier: dict[str, str] = Field(default_factory=dict)
    runs: list[str] = Field(default_factory=list)
    error: str | None = None
    counts: DeletionCounts = Field(default_factory=DeletionCounts)


class StaleBatch(Frozen):
    """A batch whose graph was made under inputs that are no longer the configured ones."""

    batch_id: str
    changed: dict[str, InputChange]


class Reprocess(Frozen):
    """A reprocessing backfill: its id, its batches, its state (the backfill's) and runs."""

    backfill_id: str
    batches: list[str]
    state: str
    runs: list[str] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Whether the backfill has ended (successfully or not)."""
        return self.state.upper() in _TERMINAL_BACKFILL

    @property
    def succeeded(self) -> bool:
        """Whether every run of the backfill succeeded."""
        return self.state.upper() in {"COMPLETED", "COMPLETED_SUCCESS"}


def busy_batches(
    instance: dg.DagsterInstance, storage: BatchStorage, names: Collection[str]
) -> dict[str, set[str]]:
    """Batches with an active run that hold any of the named documents, with those names."""
    wanted = set(names)
    busy: dict[str, set[str]] = {}
    for run in instance.get_runs(dg.RunsFilter(statuses=list(ACTIVE_STATUSES))):
        batch_id = run.tags.get(PARTITION_NAME_TAG, "")
        if not BATCH_ID.match(batch_id):
            continue
        try:
            manifest = storage.manifest(batch_id)
        except UnknownBatchError:
            continue
        held = wanted & {e.name for e in manifest.documents}
        if held:
            busy.setdefault(batch_id, set()).update(held)
    return busy


def active_batches(instance: dg.DagsterInstance, batch_ids: Collection[str]) -> set[str]:
    """The batches among ``batch_ids`` with a run queued or running (of any job)."""
    return {
        key
        for run in instance.get_runs(dg.RunsFilter(statuses=list(ACTIVE_STATUSES)))
        if (key := run.tags.get(PARTITION_NAME_TAG, "")) in batch_ids
    }


def deletion_status(
    instance: dg.DagsterInstance,
    deletion_id: str,
    documents: Sequence[str],
    runs: Sequence[dg.DagsterRun],
    earlier: Mapping[str, str] | None = None,
) -> DeletionStatus:
    """The deletion's state from its runs (oldest first) and its latest counts."""
    counts = DeletionCounts.from_metadata(
        latest_metadata(instance, document_deletions.key.to_user_string(), deletion_id)
    )
    state, error = _state(instance, runs)
    return DeletionStatus(
        deletion_id=deletion_id,
        state=state,
        documents=list(documents),
        earlier=dict(earlier or {}),
        runs=[run.run_id for run in runs],
        error=error,
        counts=counts,
    )


def _state(
    instance: dg.DagsterInstance, runs: Sequence[dg.DagsterRun]
) -> tuple[DeletionState, str | None]:
    if any(run.status == dg.DagsterRunStatus.SUCCESS for run in runs):
        return DeletionState.COMPLETE, None
    if not runs:
        return DeletionState.PENDING, None
    latest = run_view(instance, runs[-1])
    if latest.status in {"NOT_STARTED", "QUEUED", "STARTING"}:
        return (DeletionState.PENDING if len(runs) == 1 else DeletionState.DELETING), None
    if latest.status == "STARTED" or (
        latest.status == "FAILURE" and latest.will_retry is not False
    ):
        return DeletionState.DELETING, latest.error
    return DeletionState.FAILED, latest.error or f"the run ended {latest.status.lower()}"


def stale_batches(
    instance: dg.DagsterInstance, batch_ids: Sequence[str], current: PipelineInputs
) -> list[StaleBatch]:
    """The batches whose latest graph was made under inputs other than ``current``."""
    found = []
    for batch_id in batch_ids:
        metadata = latest_metadata(instance, STAGES[-1], batch_id)
        if not metadata:
            continue  # never ingested on the platform: nothing to reprocess
        changed = current.changes(PipelineInputs.from_metadata(metadata))
        if changed:
            found.append(StaleBatch(batch_id=batch_id, changed=changed))
    return found


def reprocess_status(
    instance: dg.DagsterInstance, backfill_id: str, batches: Sequence[str] = ()
) -> Reprocess:
    """A reprocessing backfill's state and runs."""
    state = backfill_state(instance, backfill_id)
    if state is None:
        raise UnknownBackfill(backfill_id)
    runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
    partitions = sorted({r.tags[PARTITION_NAME_TAG] for r in runs if PARTITION_NAME_TAG in r.tags})
    return Reprocess(
        backfill_id=backfill_id,
        batches=list(batches) or partitions,
        state=state.lower(),
        runs=[run.run_id for run in reversed(runs)],
    )
