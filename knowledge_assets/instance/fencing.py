"""Only the current attempt of a batch may commit graph writes.

An orphaned step process (measured with the multiprocess executor) or a superseded run can still
be running when a newer attempt exists. ``RunFence`` is checked inside the ingesting transaction:
it share-locks the run's row in Dagster's ``runs`` table, so Dagster cannot mark the run failed
(and so the retry daemon cannot start a newer attempt) until the transaction ends, and it checks
that the run is still STARTED and is the batch's newest submitted run (a run still NOT_STARTED
is no attempt: it may be a duplicate the run gate is about to refuse, ``run_gate.py``).

This reads Dagster's own tables, which live in the same database as ours (dagster.yaml points at
``KNOWLEDGE_DATABASE_URL``); ``tests/test_fencing.py`` pins the columns it relies on. If the
instance keeps its runs elsewhere, the fence falls back to asking the instance, without the lock.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from knowledge_assets.instance.dagster_internals import PARTITION_NAME_TAG
from knowledge_assets.instance.run_gate import submitted_runs
from knowledge_assets.pipeline.store import StaleAttempt

_LOCK_RUN = sa.text("SELECT status FROM runs WHERE run_id = :run_id FOR SHARE")
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
        """Raise ``StaleAttempt`` unless this run is STARTED and the batch's newest run."""
        status = connection.execute(_LOCK_RUN, {"run_id": self.run_id}).scalar_one_or_none()
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
