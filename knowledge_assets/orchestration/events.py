"""Typed progress events of a batch, translated from the Dagster event-log records of its runs.

The translation is a pure function of the record sequence (and of the runs' tags), so replaying
the same records always yields the same events with the same ids. An event's id is the storage
id of the record it came from (global and increasing in Dagster's event log, so it keeps growing
across retry runs); when one record yields several events the later ones get ``<id>.1``,
``<id>.2``.

The batch's state is not derived here a second time: the translator keeps a ``RunView`` per run
up to date from the records and asks the state machine (``state.derive_state``, the function
``poll`` uses) for the state after each one, so a stream and a poll can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dagster import DagsterEventType, DagsterRun, EventLogRecord
from pydantic import BaseModel, ConfigDict

from knowledge_assets.instance.dagster_internals import WILL_RETRY_TAG
from knowledge_assets.orchestration.state import BatchState, Derived, RunView, derive_state
from knowledge_assets.pipeline.progress import StageCounts, parse_progress

__all__ = [
    "BatchEvent",
    "EventId",
    "EventTranslator",
]

_RETRY_NUMBER = "dagster/retry_number"
_PARENT_RUN = "dagster/parent_run_id"

EventKind = Literal["state", "stage", "progress", "entity_count", "retry", "error", "complete"]


@dataclass(frozen=True, order=True)
class EventId:
    """Position of an event: the record's storage id and the event's index within the record."""

    storage_id: int
    index: int = 0

    def __str__(self) -> str:
        return str(self.storage_id) if self.index == 0 else f"{self.storage_id}.{self.index}"

    @classmethod
    def parse(cls, text: str) -> EventId:
        """Read an id sent as ``Last-Event-ID``; raises ``ValueError`` for anything else."""
        head, dot, tail = text.strip().partition(".")
        if not head.isdigit() or (dot and not tail.isdigit()):
            raise ValueError(f"not an event id: {text[:40]!r}")
        return cls(int(head), int(tail) if dot else 0)


class BatchEvent(BaseModel):
    """One SSE event: ``event:`` is ``kind``, ``data:`` is the JSON of this model."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: EventKind
    batch_id: str
    run_id: str
    timestamp: float
    state: str | None = None
    stage: str | None = None
    status: Literal["started", "finished", "failed"] | None = None
    done: int | None = None
    total: int | None = None
    reused: int | None = None
    entities: int | None = None
    relations: int | None = None
    quarantined: int | None = None
    attempt: int | None = None
    will_retry: bool | None = None
    code: str | None = None
    message: str | None = None


@dataclass
class _RunRecord:
    """What the records have said so far about one run (a mutable ``RunView``)."""

    run_id: str
    status: str = "QUEUED"
    steps: dict[str, str] = field(default_factory=dict)
    will_retry: bool | None = False
    error: str | None = None
    interrupted: bool = False

    def view(self) -> RunView:
        return RunView(
            run_id=self.run_id,
            status=self.status,
            steps=dict(self.steps),
            will_retry=self.will_retry,
            error=self.error,
            interrupted=self.interrupted,
        )


_STEP_STATUS = {
    DagsterEventType.STEP_START: "in_progress",
    DagsterEventType.STEP_SUCCESS: "success",
    DagsterEventType.STEP_FAILURE: "failure",
}
# The stages whose materialization completes a count of units: which count it is.
_UNIT_OF_STAGE = {"documents": "documents", "chunks": "chunks", "extractions": "chunks"}
_GRAPH_STAGES = ("resolved_entities", "validated_graph")


@dataclass
class EventTranslator:
    """Feeds records in storage-id order; remembers each run it has seen and the batch's state."""

    batch_id: str
    state: BatchState | None = None
    _runs: dict[str, _RunRecord] = field(default_factory=dict)

    @property
    def derived(self) -> Derived:
        """The state machine's view of every run seen so far."""
        return derive_state([run.view() for run in self._runs.values()])

    @property
    def terminal(self) -> bool:
        """The batch has reached Complete, or Failed with no retry coming."""
        return self.state is not None and self.state.terminal

    @property
    def awaiting_retry(self) -> bool:
        """The latest run failed and Dagster said it will be retried."""
        latest = list(self._runs.values())[-1] if self._runs else None
        return latest is not None and latest.status == "FAILURE" and latest.will_retry is True

    def feed(self, record: EventLogRecord, run: DagsterRun) -> list[BatchEvent]:
        """The events one record yields (often none)."""
        drafts = self._drafts(record, run)
        return [
            BatchEvent(
                id=str(EventId(record.storage_id, index)),
                batch_id=self.batch_id,
                run_id=record.run_id,
                timestamp=record.timestamp,
                **draft,
            )
            for index, draft in enumerate(drafts)
        ]

    def _drafts(self, record: EventLogRecord, run: DagsterRun) -> list[dict[str, Any]]:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None:
            progress = parse_progress(entry.user_message)
            return [self._progress(progress)] if progress else []
        kind = event.event_type
        if kind in (DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_START):
            return self._run_seen(run, "STARTED" if kind == DagsterEventType.RUN_START else None)
        known = self._runs.get(run.run_id)
        if known is None:
            return []  # records written before the run was queued (planned materializations)
        if kind in _STEP_STATUS:
            return self._step(known, event, _STEP_STATUS[kind])
        if kind == DagsterEventType.STEP_UP_FOR_RETRY:
            return [{"kind": "retry", "stage": event.step_key, "message": event.message}]
        if kind == DagsterEventType.ASSET_MATERIALIZATION:
            return _materialized(event.step_key or "", _metadata(event))
        if kind == DagsterEventType.RUN_SUCCESS:
            known.status = "SUCCESS"
            return [*self._state_moves(), {"kind": "complete", "state": BatchState.COMPLETE.value}]
        if kind in (DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED):
            return self._run_failed(
                known, event, run, canceled=kind == DagsterEventType.RUN_CANCELED
            )
        return []

    def _run_seen(self, run: DagsterRun, status: str | None) -> list[dict[str, Any]]:
        drafts: list[dict[str, Any]] = []
        known = self._runs.get(run.run_id)
        if known is None:
            known = self._runs[run.run_id] = _RunRecord(run.run_id)
            if len(self._runs) > 1:
                reason = "automatic retry" if run.tags.get(_RETRY_NUMBER) else "resumed"
                parent = run.tags.get(_PARENT_RUN, "?")
                drafts.append(
                    {
                        "kind": "retry",
                        "attempt": len(self._runs),
                        "message": f"{reason} of run {parent}",
                    }
                )
        if status is not None:
            known.status = status
        return drafts + self._state_moves()

    def _step(self, run: _RunRecord, event: Any, status: str) -> list[dict[str, Any]]:
        stage = event.step_key or ""
        run.steps[stage] = status
        if status == "failure":
            run.error = _error_message(event)
        # Entering a stage announces the state first; finishing or failing it, the stage first.
        stage_event = {"kind": "stage", "stage": stage, "status": _STAGE_EVENT[status]}
        moves = self._state_moves()
        return [*moves, stage_event] if status == "in_progress" else [stage_event, *moves]

    def _run_failed(
        self, known: _RunRecord, event: Any, run: DagsterRun, *, canceled: bool
    ) -> list[dict[str, Any]]:
        will_retry = not canceled and run.tags.get(WILL_RETRY_TAG) == "true"
        known.status = "CANCELED" if canceled else "FAILURE"
        known.will_retry = will_retry
        known.interrupted = canceled
        known.error = known.error or event.message or "run failed"
        error = {
            "kind": "error",
            "code": "interrupted" if canceled else "run_failed",
            "message": "interrupted" if canceled else known.error,
            "will_retry": will_retry,
        }
        return [error, *self._state_moves()]

    def _state_moves(self) -> list[dict[str, Any]]:
        state = self.derived.state
        if state == self.state:
            return []
        self.state = state
        return [{"kind": "state", "state": state.value}]

    def _progress(self, progress: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "progress",
            "stage": str(progress.get("stage", "extractions")),
            "done": _int(progress.get("done")),
            "total": _int(progress.get("total")),
            "reused": _int(progress.get("reused")),
        }


_STAGE_EVENT = {"in_progress": "started", "success": "finished", "failure": "failed"}


def _materialized(stage: str, metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    counts = StageCounts.from_metadata(metadata)
    if stage in _UNIT_OF_STAGE:
        count = getattr(counts, _UNIT_OF_STAGE[stage])
        reused = counts.cache_hits if stage == "extractions" else None
        return [
            {"kind": "progress", "stage": stage, "done": count, "total": count, "reused": reused}
        ]
    if stage in _GRAPH_STAGES:
        return [
            {
                "kind": "entity_count",
                "stage": stage,
                "entities": counts.entities,
                "relations": counts.relations,
                "quarantined": counts.quarantined,
            }
        ]
    return []


def _metadata(event: Any) -> dict[str, Any]:
    materialization = event.step_materialization_data.materialization
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def _error_message(event: Any) -> str:
    error = getattr(event.event_specific_data, "error", None)
    return (getattr(error, "message", None) or event.message or "step failed").strip()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
