"""The batch state machine, derived from the Dagster runs of a batch and never stored by us.

Pending → Preprocessing → Extracting → Resolving → Validating → Ingesting → Complete, or Failed.
``derive_state`` is a pure function of the batch's run records, so the API, the CLI and the SSE
stream all agree, and ``check_transition`` rejects any move the table below does not allow: an
observer that sees an illegal move has a bug, not a batch in a new state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from knowledge_assets.pipeline.cost import BatchCost
from knowledge_assets.pipeline.inputs import InputChange
from knowledge_assets.pipeline.models import Frozen
from knowledge_assets.pipeline.progress import STAGES


class BatchState(StrEnum):
    """Where a batch is in its life."""

    PENDING = "pending"
    PREPROCESSING = "preprocessing"
    EXTRACTING = "extracting"
    RESOLVING = "resolving"
    VALIDATING = "validating"
    INGESTING = "ingesting"
    COMPLETE = "complete"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """No further transition happens without a user's ``resume`` (or never, for Complete)."""
        return self in (BatchState.COMPLETE, BatchState.FAILED)


# The state each stage of the pipeline (``STAGES``, in order) puts the batch in.
STATE_OF_STAGE: Mapping[str, BatchState] = dict(
    zip(
        STAGES,
        (
            BatchState.PREPROCESSING,  # documents
            BatchState.PREPROCESSING,  # chunks
            BatchState.EXTRACTING,
            BatchState.RESOLVING,
            BatchState.VALIDATING,
            BatchState.INGESTING,
        ),
        strict=True,
    )
)
_FORWARD: tuple[BatchState, ...] = (
    BatchState.PENDING,
    BatchState.PREPROCESSING,
    BatchState.EXTRACTING,
    BatchState.RESOLVING,
    BatchState.VALIDATING,
    BatchState.INGESTING,
    BatchState.COMPLETE,
)
_WORKING = frozenset(_FORWARD[1:-1])


def _legal_transitions() -> dict[BatchState, frozenset[BatchState]]:
    # Forward moves may skip states (an observer samples; a resumed run skips finished stages).
    # Any unfinished state may fail; a failed batch resumes into a working state or completes
    # before the next observation. Complete is final: re-materialising a batch is not a new life.
    table: dict[BatchState, frozenset[BatchState]] = {}
    for index, state in enumerate(_FORWARD[:-1]):
        table[state] = frozenset(_FORWARD[index + 1 :]) | {BatchState.FAILED}
    table[BatchState.COMPLETE] = frozenset()
    table[BatchState.FAILED] = _WORKING | {BatchState.COMPLETE}
    return table


LEGAL_TRANSITIONS: Mapping[BatchState, frozenset[BatchState]] = _legal_transitions()


class IllegalTransition(RuntimeError):
    """An observer saw a move the state machine does not allow."""


def check_transition(before: BatchState, after: BatchState) -> BatchState:
    """``after`` if moving there from ``before`` is legal (staying put always is)."""
    if after != before and after not in LEGAL_TRANSITIONS[before]:
        raise IllegalTransition(f"a batch cannot move from {before} to {after}")
    return after


@dataclass(frozen=True)
class RunView:
    """What the state machine needs from one Dagster run of the batch.

    ``status`` is the DagsterRunStatus value; ``steps`` maps step keys to ``success``,
    ``failure``, ``in_progress`` or ``skipped``; ``will_retry`` is Dagster's own verdict that
    the run retry daemon will launch a from-failure retry, or None while it is not recorded yet
    (Dagster writes the failure first and the verdict just after: a batch must not look Failed
    in between).
    """

    run_id: str
    status: str
    steps: Mapping[str, str] = field(default_factory=dict)
    will_retry: bool | None = False
    error: str | None = None
    interrupted: bool = False


class Derived(Frozen):
    """The state and the stages that explain it."""

    state: BatchState
    stage: str | None = None
    last_successful_stage: str | None = None
    failed_stage: str | None = None
    error: str | None = None


_QUEUED = {"NOT_STARTED", "QUEUED", "STARTING", "MANAGED"}
_FAILED = {"FAILURE", "CANCELED", "CANCELING"}


def derive_state(runs: Sequence[RunView]) -> Derived:
    """The batch's state from its runs, oldest first (the last is the latest of its retry chain)."""
    done = {key for run in runs for key, status in run.steps.items() if status == "success"}
    last_done = next((s for s in reversed(STAGES) if s in done), None)
    if any(run.status == "SUCCESS" for run in runs):
        return Derived(state=BatchState.COMPLETE, last_successful_stage=last_done)
    next_stage = next((s for s in STAGES if s not in done), STAGES[-1])
    if not runs:
        return Derived(state=BatchState.PENDING)
    latest = runs[-1]
    if latest.status in _QUEUED and not done and len(runs) == 1:
        return Derived(state=BatchState.PENDING)
    working = STATE_OF_STAGE[next_stage]
    if latest.status in _QUEUED or latest.status == "STARTED":
        return Derived(state=working, stage=next_stage, last_successful_stage=last_done)
    if latest.status == "FAILURE" and latest.will_retry is not False:
        return Derived(
            state=working, stage=next_stage, last_successful_stage=last_done, error=latest.error
        )
    if latest.status in _FAILED:
        error = "interrupted" if latest.interrupted else (latest.error or "the run failed")
        return Derived(
            state=BatchState.FAILED,
            stage=next_stage,
            last_successful_stage=last_done,
            failed_stage=next_stage,
            error=error,
        )
    raise ValueError(f"unknown Dagster run status {latest.status!r}")


class StageProgress(Frozen):
    """Counts per stage, as far as the batch got."""

    documents: int = 0
    rejected: int = 0
    chunks_total: int = 0
    chunks_done: int = 0
    chunks_reused: int = 0
    entities: int = 0
    relations: int = 0
    quarantined: int = 0


class DocumentStatus(Frozen):
    """One submitted document and what became of it, with the reason.

    ``accepted``, ``refused`` or ``quarantined``; ``superseded`` when a newer version of it
    (another batch's) is the live one, ``deleted`` when a deletion forgot it.
    """

    name: str
    status: str
    reason: str | None = None


class BatchStatus(Frozen):
    """What ``poll`` answers: the state machine's view of a batch plus its counts and runs.

    ``source`` and ``submitted_at`` come from the batch's record (its first submission);
    ``started_at`` and ``finished_at`` from Dagster's run records (the first run's start, the end
    of the run that completed the batch, or of the latest run of a failed one);
    ``duration_s`` is from submission (or start) to finish. ``cost`` is what its latest
    materializations recorded; ``inputs`` the input fingerprints its graph was last made under,
    and ``stale`` each of them that differs from the configured one (empty: up to date).
    """

    batch_id: str
    state: BatchState
    stage: str | None = None
    progress: StageProgress = Field(default_factory=StageProgress)
    error: str | None = None
    failed_stage: str | None = None
    last_successful_stage: str | None = None
    runs: list[str] = Field(default_factory=list)
    # Run id -> the worker node (``name@host``) that executed it; runs no worker took are absent.
    workers: dict[str, str] = Field(default_factory=dict)
    documents: list[DocumentStatus] = Field(default_factory=list)
    source: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    cost: BatchCost = Field(default_factory=BatchCost)
    inputs: dict[str, str] = Field(default_factory=dict)
    stale: dict[str, InputChange] = Field(default_factory=dict)

    @property
    def resumable(self) -> bool:
        """A failed or interrupted batch can be resumed from its failure."""
        return self.state == BatchState.FAILED
