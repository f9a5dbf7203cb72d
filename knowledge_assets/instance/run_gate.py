"""One gate for exactly-once: every run of a batch partition is admitted or refused in one place.

Runs of a batch start from many places: the Orchestrator (API, CLI), the inbox sensor, the run
retry daemon, a backfill or a launch from the Dagster UI. Each ends in
``DagsterInstance.submit_run``, which hands the run to the instance's run coordinator, so the
coordinator configured in dagster.yaml is the one place that sees them all. Before it queues a
run that carries a partition tag, ``ExactlyOnceRunCoordinator`` takes a PostgreSQL advisory lock
per partition and asks ``admit`` whether the run may exist:

* no other submitted run of the batch may be active (queued, starting, started, canceling):
  a batch has at most one live run;
* a re-execution (``parent_run_id`` set: a from-failure retry, ``resume``) is admitted only as
  the retry of the batch's newest run, and only if that run failed or was canceled;
* a fresh run is admitted only for a batch that has no submitted run yet, or when it carries
  ``RERUN_TAG`` (``Orchestrator.rerun``: an operator re-materialising a settled batch).

A refused run is deleted with its events before it was ever queued, so the batch's run list,
state, event stream and fence never see it. ``submit_run`` then returns the run that holds the
batch, which callers show instead (the sensor's tick, the webserver's launch answer). Dagster
calls ``submit_run`` only on a run it just created (status ``NOT_STARTED``); runs in that state
are not yet attempts, so the gate, the fence and the Orchestrator ignore them.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa
from dagster import DagsterRun, DagsterRunStatus

from knowledge_assets.instance.dagster_internals import PARTITION_NAME_TAG
from knowledge_assets.instance.storage import runs_engine

__all__ = [
    "ACTIVE_STATUSES",
    "RERUN_TAG",
    "Admission",
    "ExactlyOnceRunCoordinator",
    "admit",
    "partition_lock",
    "submitted_runs",
]

RERUN_TAG = "knowledge/rerun"
ACTIVE_STATUSES = frozenset(
    {
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    }
)
_RETRYABLE = frozenset({DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED})
_LOCK_PREFIX = "knowledge-batch:"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """The gate's answer: ``holder`` is the run that keeps the batch when ``run`` is refused."""

    admitted: bool
    reason: str = ""
    holder: DagsterRun | None = None


def admit(run: DagsterRun, others: Sequence[DagsterRun]) -> Admission:
    """Whether ``run`` may be queued, given the batch's other submitted runs (oldest first)."""
    live = [other for other in others if other.status in ACTIVE_STATUSES]
    if live:
        return _refuse(f"run {live[-1].run_id} of the batch is {live[-1].status.value}", live[-1])
    newest = others[-1] if others else None
    if run.parent_run_id is not None:
        if newest is None or newest.run_id != run.parent_run_id:
            return _refuse("it re-executes a run that is not the batch's newest", newest)
        if newest.status not in _RETRYABLE:
            return _refuse(f"its parent run is {newest.status.value}, not failed", newest)
        return Admission(True)
    if newest is not None and run.tags.get(RERUN_TAG) != "true":
        return _refuse(f"the batch already has run {newest.run_id}", newest)
    return Admission(True)


def _refuse(reason: str, holder: DagsterRun | None) -> Admission:
    return Admission(False, reason, holder)


# Every status but NOT_STARTED: a run still NOT_STARTED is no attempt of its batch yet.
SUBMITTED_STATUSES = [s for s in DagsterRunStatus if s != DagsterRunStatus.NOT_STARTED]


def submitted_runs(instance: dg.DagsterInstance, partition: str) -> list[DagsterRun]:
    """The partition's runs that were ever submitted, oldest first."""
    runs = instance.get_runs(
        dg.RunsFilter(tags={PARTITION_NAME_TAG: partition}, statuses=SUBMITTED_STATUSES)
    )
    return list(reversed(runs))


@contextlib.contextmanager
def partition_lock(instance: dg.DagsterInstance, partition: str) -> Iterator[None]:
    """Hold the partition's advisory lock for the block (released at its transaction's end)."""
    engine = _lock_engine(instance)
    if engine is None:  # not our PostgreSQL storage (a test's in-memory instance): no peers
        yield
        return
    with engine.connect() as connection, connection.begin():
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": _LOCK_PREFIX + partition},
        )
        yield


_lock_engines: weakref.WeakKeyDictionary[dg.DagsterInstance, sa.Engine] = (
    weakref.WeakKeyDictionary()
)


def _lock_engine(instance: dg.DagsterInstance) -> sa.Engine | None:
    """An engine of its own for the lock, one per instance, without a pool.

    Not the storage's: its pool is small, and a submitter waiting for the lock would hold one
    of its connections while the lock's holder needs one to read runs and queue its own.
    The storage engine also autocommits, which would drop a transaction-level lock at once.
    """
    if instance not in _lock_engines:
        storage_engine = runs_engine(instance)
        if storage_engine is None:
            return None
        _lock_engines[instance] = sa.create_engine(storage_engine.url, poolclass=sa.NullPool)
    return _lock_engines[instance]


class ExactlyOnceRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's queued run coordinator, with ``admit`` in front of every partitioned run."""

    def submit_run(self, context: dg.SubmitRunContext) -> DagsterRun:
        """Queue the run if the gate admits it; otherwise delete it and return the holder."""
        run = context.dagster_run
        partition = run.tags.get(PARTITION_NAME_TAG)
        if partition is None or run.status != DagsterRunStatus.NOT_STARTED:
            return super().submit_run(context)
        instance = self._instance
        with partition_lock(instance, partition):
            others = [r for r in submitted_runs(instance, partition) if r.run_id != run.run_id]
            admission = admit(run, others)
            if admission.admitted:
                return super().submit_run(context)
            instance.delete_run(run.run_id)
        _log.info("run %s of %s not queued: %s", run.run_id, partition, admission.reason)
        return admission.holder or run
