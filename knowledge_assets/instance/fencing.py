"""Only the current attempt of a batch may commit graph writes.

A superseded attempt can still be running when a newer one exists: a worker that was frozen
(SIGSTOP, a network partition) or cut off while its run was failed and retried elsewhere.
``RunFence.check`` runs inside the ingesting transaction, before any write:

* a run executed by a worker holds its lease (``leases.py``): the fence key-shares the lease row,
  which must be this task's and neither revoked nor finished. Run monitoring revokes a silent
  lease (waiting for a fence that holds it) *before* it reports the run failed, so no commit of
  this attempt can follow the failure, and no newer attempt exists while the fence holds;
* the run must be STARTED and the batch's newest submitted run (Dagster's ``runs`` and
  ``run_tags``, read without a lock). A run still NOT_STARTED is no attempt: it may be a
  duplicate the run gate is about to refuse (``run_gate.py``).

The fence never locks Dagster's own rows. It used to share-lock the run's row instead; a worker
frozen inside the ingest then held that lock, ``report_run_failed`` wrote the failure event and
waited on the lock to update the status, and the retry daemon read the event while the run still
said STARTED and dropped the retry for good (measured: the retry came only when the frozen
worker was resumed, minutes later).

This reads Dagster's tables, which live in the same database as ours (dagster.yaml points at
``KNOWLEDGE_DATABASE_URL``); ``tests/test_fencing.py`` pins the columns it relies on. If the
instance keeps its runs elsewhere, the status is asked of the instance instead.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from knowledge_assets.instance.dagster_internals import PARTITION_NAME_TAG
from knowledge_assets.instance.leases import LeaseStore, current_task
from knowledge_assets.instance.run_gate import submitted_runs
from knowledge_assets.pipeline.store import StaleAttempt

_STATUS = sa.text("SELECT status FROM runs WHERE run_id = :run_id")
_NEWEST_RUN = sa.text(
    "SELECT r.run_id FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
    "WHERE t.key = :tag AND t.value = :batch AND r.status <> 'NOT_STARTED' "
    "ORDER BY r.id DESC LIMIT 1"
)


class RunFence:
    """The fence of one Dagster run working on one batch."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, batch_id: str) -> None:
        self.instance = instance
        self.run_id = run_id
        self.batch_id = batch_id

    def check(self, connection: sa.Connection) -> None:
        """Raise ``StaleAttempt`` unless this attempt holds the run and the run is current."""
        task = current_task(self.run_id)
        if task is not None and not LeaseStore.fence(connection, self.run_id, task):
            raise StaleAttempt(f"run {self.run_id}: its worker lease was revoked")
        status = connection.execute(_STATUS, {"run_id": self.run_id}).scalar_one_or_none()
        if status is None:
            self._check_through_instance()
            return
        newest = connection.execute(
            _NEWEST_RUN, {"tag": PARTITION_NAME_TAG, "batch": self.batch_id}
        ).scalar_one_or_none()
        self._judge(status, newest)

    def _check_through_instance(self) -> None:
        run = self.instance.get_run_by_id(self.run_id)
        if run is None:
            return  # not a run of this instance's storage: nothing to fence against
        runs = submitted_runs(self.instance, self.batch_id)
        self._judge(run.status.value, runs[-1].run_id if runs else None)

    def _judge(self, status: str, newest: str | None) -> None:
        if status != "STARTED":
            raise StaleAttempt(f"run {self.run_id} is {status}: a stale attempt may not write")
        if newest is not None and newest != self.run_id:
            raise StaleAttempt(f"run {newest} superseded run {self.run_id} for {self.batch_id}")
