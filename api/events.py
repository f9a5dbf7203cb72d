"""Typed progress events of a batch, translated from the Dagster event-log records of its runs.

The translation is a pure function of the record sequence (and of the runs' tags), so replaying
the same records always yields the same events with the same ids. An event's id is the storage
id of the record it came from (global and increasing in Dagster's event log, so it keeps growing
across retry runs); when one record yields several events the later ones get ``<id>.1``,
``<id>.2``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dagster import DagsterEventType, DagsterRun, EventLogRecord
from pydantic import BaseModel, ConfigDict

from knowledge_assets.orchestration.progress import parse_progress
from knowledge_assets.orchestration.state import STATE_OF_STAGE, BatchState

__all__ = [
    "BatchEvent",
    "EventId",
    "EventTranslator",
]

_WILL_RETRY = "dagster/will_retry"
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
class EventTranslator:
    """Feeds records in storage-id order; remembers what it has announced (state, runs)."""

    batch_id: str
    state: BatchState | None = None
    terminal: bool = False
    awaiting_retry: bool = False
    _announced: set[str] = field(default_factory=set)
    _step_errors: dict[str, str] = field(default_factory=dict)

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
            return self._announce(run)
        if kind == DagsterEventType.STEP_START:
            return self._step_started(event.step_key or "")
        if kind == DagsterEventType.STEP_SUCCESS:
            return [{"kind": "stage", "stage": event.step_key, "status": "finished"}]
        if kind == DagsterEventType.STEP_UP_FOR_RETRY:
            return [{"kind": "retry", "stage": event.step_key, "message": event.message}]
        if kind == DagsterEventType.STEP_FAILURE:
            self._step_errors[run.run_id] = _error_message(event)
            return [{"kind": "stage", "stage": event.step_key, "status": "failed"}]
        if kind == DagsterEventType.ASSET_MATERIALIZATION:
            return _materialized(event.step_key or "", _metadata(event))
        if kind == DagsterEventType.RUN_SUCCESS:
            self.terminal = True
            return [
                self._set_state(BatchState.COMPLETE),
                {"kind": "complete", "state": BatchState.COMPLETE.value},
            ]
        if kind in (DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED):
            return self._run_failed(event, run, canceled=kind == DagsterEventType.RUN_CANCELED)
        return []

    def _announce(self, run: DagsterRun) -> list[dict[str, Any]]:
        if run.run_id in self._announced:
            return []
        self._announced.add(run.run_id)
        self.terminal = self.awaiting_retry = False
        if len(self._announced) == 1:
            return [self._set_state(BatchState.PENDING)]
        retry_number = run.tags.get(_RETRY_NUMBER)
        reason = "automatic retry" if retry_number else "resumed"
        retry = {
            "kind": "retry",
            "attempt": len(self._announced),
            "message": f"{reason} of run {run.tags.get(_PARENT_RUN, '?')}",
        }
        return [retry, self._set_state(BatchState.PENDING)]

    def _step_started(self, stage: str) -> list[dict[str, Any]]:
        drafts = []
        entered = STATE_OF_STAGE.get(stage)
        if entered and entered != self.state:
            drafts.append(self._set_state(entered))
        drafts.append({"kind": "stage", "stage": stage, "status": "started"})
        return drafts

    def _run_failed(self, event: Any, run: DagsterRun, *, canceled: bool) -> list[dict[str, Any]]:
        will_retry = not canceled and run.tags.get(_WILL_RETRY) == "true"
        self.terminal = not will_retry
        self.awaiting_retry = will_retry
        message = self._step_errors.get(run.run_id) or event.message or "run failed"
        error = {
            "kind": "error",
            "code": "interrupted" if canceled else "run_failed",
            "message": "interrupted" if canceled else message,
            "will_retry": will_retry,
        }
        return [error] if will_retry else [error, self._set_state(BatchState.FAILED)]

    def _progress(self, progress: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "progress",
            "stage": str(progress.get("stage", "extractions")),
            "done": _int(progress.get("done")),
            "total": _int(progress.get("total")),
            "reused": _int(progress.get("reused")),
        }

    def _set_state(self, state: BatchState) -> dict[str, Any]:
        self.state = state
        return {"kind": "state", "state": state.value}


def _materialized(stage: str, metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    if stage in ("documents", "chunks", "extractions"):
        count = _int(metadata.get(stage if stage != "extractions" else "chunks"))
        reused = _int(metadata.get("cache_hits")) if stage == "extractions" else None
        return [
            {"kind": "progress", "stage": stage, "done": count, "total": count, "reused": reused}
        ]
    if stage in ("resolved_entities", "validated_graph"):
        return [
            {
                "kind": "entity_count",
                "stage": stage,
                "entities": _int(metadata.get("entities")),
                "relations": _int(metadata.get("relations")),
                "quarantined": _int(metadata.get("quarantined")),
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
