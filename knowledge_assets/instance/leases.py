"""Worker leases in PostgreSQL: which node runs which run, and whether it is still alive.

The Celery task executing a run writes the run's lease before the run starts and renews it from a
thread every ``RENEW_S``; the run launcher's health check (run monitoring, in the daemon) fails a
run whose lease stayed silent for ``TTL_S``, and the retry daemon re-executes it from failure on
another worker. Both sides use the database's clock only: no worker host's clock is trusted.

A lease catches what the Celery result backend cannot (it says STARTED forever when a whole
worker dies, measured): a host lost, a worker killed with -9, a frozen process (SIGSTOP), a network
partition. It is liveness bookkeeping, not workflow state: the run's status stays Dagster's. Its
row also says which node took the run, which status reports read: written once, by the task
itself. (A run tag was tried: Dagster's ``add_run_tags`` rewrites the whole run record, and the
launcher's own tag write, racing the task's start, erased it.)

Locks, and why these: the graph store's fence holds the lease row ``FOR KEY SHARE`` while an
ingest commits; revoking takes ``FOR UPDATE``, which waits for it, so once a lease is revoked no
commit of that attempt can follow. Renewing is a plain update of non-key columns, which a key
share does not block: a long commit keeps its lease alive.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import sqlalchemy as sa

__all__ = ["RENEW_S", "TTL_S", "Lease", "LeaseBusy", "LeaseKeeper", "LeaseStore", "current_task"]

# Renewed every 2 s, judged lost after 10 s of silence: with run monitoring polling every 2 s, a
# lost worker's run fails 10-12 s after its last renewal.
RENEW_S = 2.0
TTL_S = 10.0

_log = logging.getLogger(__name__)
_TABLE = "knowledge.worker_leases"
_BEGIN = sa.text(
    f"INSERT INTO {_TABLE} (run_id, task_id, node, pid, ttl_s) "
    "VALUES (:run_id, :task_id, :node, :pid, :ttl_s) ON CONFLICT (run_id) DO NOTHING"
)
_OWNER = sa.text(f"SELECT task_id FROM {_TABLE} WHERE run_id = :run_id")
_RENEW = sa.text(
    f"UPDATE {_TABLE} SET renewed_at = now() WHERE run_id = :run_id AND task_id = :task_id "
    "AND finished_at IS NULL AND revoked_at IS NULL"
)
_FINISH = sa.text(
    f"UPDATE {_TABLE} SET finished_at = now() WHERE run_id = :run_id AND task_id = :task_id "
    "AND finished_at IS NULL"
)
_LOCK = sa.text(f"SELECT run_id FROM {_TABLE} WHERE run_id = :run_id FOR UPDATE")
_REVOKE = sa.text(
    f"UPDATE {_TABLE} SET revoked_at = now() WHERE run_id = :run_id "
    "AND finished_at IS NULL AND revoked_at IS NULL "
    "AND (:force OR clock_timestamp() - renewed_at > ttl_s * interval '1 second') "
    "RETURNING run_id"
)
_FENCE = sa.text(
    f"SELECT task_id = :task_id AND revoked_at IS NULL AND finished_at IS NULL FROM {_TABLE} "
    "WHERE run_id = :run_id FOR KEY SHARE"
)
_STATUS = sa.text(
    "SELECT node, pid, task_id, finished_at IS NOT NULL AS finished, "
    "revoked_at IS NOT NULL AS revoked, "
    f"EXTRACT(EPOCH FROM clock_timestamp() - renewed_at) AS silent_s, ttl_s FROM {_TABLE} "
    "WHERE run_id = :run_id"
)
_NODES = sa.text(f"SELECT run_id, node FROM {_TABLE} WHERE run_id = ANY(:run_ids)")

# The run this process executes under a lease, and the lease's task (one run per pool child).
_current: dict[str, str] = {}


def current_task(run_id: str) -> str | None:
    """The task holding ``run_id``'s lease in this process, or None (not run by a worker)."""
    return _current.get(run_id)


@dataclass(frozen=True)
class Lease:
    """A run's lease as the database sees it now."""

    node: str
    pid: int
    task_id: str
    finished: bool
    revoked: bool
    silent_s: float
    ttl_s: float

    @property
    def expired(self) -> bool:
        """Not renewed within its time to live (and not finished)."""
        return not self.finished and self.silent_s > self.ttl_s


class LeaseBusy(Exception):
    """An attempt holding the lease is committing: judge the run again at the next poll."""


class LeaseStore:
    """Reads and writes leases through one engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def begin(self, run_id: str, task_id: str, node: str, pid: int, ttl_s: float = TTL_S) -> bool:
        """Take the run's lease; False if another task holds (or held) it."""
        values = {"run_id": run_id, "task_id": task_id, "node": node, "pid": pid, "ttl_s": ttl_s}
        with self.engine.begin() as connection:
            connection.execute(_BEGIN, values)
            owner = connection.execute(_OWNER, {"run_id": run_id}).scalar_one()
        return bool(owner == task_id)

    def renew(self, run_id: str, task_id: str) -> bool:
        """Extend the lease; False once it was revoked or finished."""
        with self.engine.begin() as connection:
            return connection.execute(_RENEW, {"run_id": run_id, "task_id": task_id}).rowcount == 1

    def finish(self, run_id: str, task_id: str) -> None:
        """The task returned: the run's status is final in Dagster by now."""
        with self.engine.begin() as connection:
            connection.execute(_FINISH, {"run_id": run_id, "task_id": task_id})

    def get(self, run_id: str) -> Lease | None:
        """The run's lease, or None if no task has started the run."""
        with self.engine.connect() as connection:
            row = connection.execute(_STATUS, {"run_id": run_id}).one_or_none()
        if row is None:
            return None
        return Lease(
            node=row.node,
            pid=row.pid,
            task_id=row.task_id,
            finished=row.finished,
            revoked=row.revoked,
            silent_s=float(row.silent_s),
            ttl_s=float(row.ttl_s),
        )

    def revoke(self, run_id: str, *, force: bool = False, lock_timeout_ms: int = 2000) -> bool:
        """Revoke the lease if it expired (or at once with ``force``); whether it was revoked now.

        Waits for an attempt committing under the lease; raises ``LeaseBusy`` if that takes
        longer than ``lock_timeout_ms`` (run monitoring must not hang on a frozen holder, whose
        session PostgreSQL ends after ``idle_in_transaction_session_timeout``).
        """
        try:
            with self.engine.begin() as connection:
                connection.execute(sa.text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
                connection.execute(_LOCK, {"run_id": run_id})
                revoked = connection.execute(_REVOKE, {"run_id": run_id, "force": force})
                return revoked.first() is not None
        except sa.exc.OperationalError as exc:
            if "lock timeout" in str(exc):
                raise LeaseBusy(run_id) from exc
            raise

    @staticmethod
    def fence(connection: sa.Connection, run_id: str, task_id: str) -> bool | None:
        """Inside the caller's transaction: key-share the lease; whether it is live and ours.

        None when the run has no lease.
        """
        held = connection.execute(_FENCE, {"run_id": run_id, "task_id": task_id})
        value = held.scalar_one_or_none()
        return None if value is None else bool(value)

    def nodes(self, run_ids: list[str]) -> dict[str, str]:
        """Run id -> the worker node that took it (runs no worker took are left out)."""
        if not run_ids:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(_NODES, {"run_ids": run_ids}).all()
        return {row.run_id: row.node for row in rows}


class LeaseKeeper:
    """Holds one run's lease while the run executes in this process, renewing it from a thread."""

    def __init__(self, store: LeaseStore, run_id: str, task_id: str, renew_s: float = RENEW_S):
        self.store = store
        self.run_id = run_id
        self.task_id = task_id
        self.renew_s = renew_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{run_id[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        _current[self.run_id] = self.task_id
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        _current.pop(self.run_id, None)
        try:
            self.store.finish(self.run_id, self.task_id)
        except sa.exc.SQLAlchemyError:
            # Unfinished, the lease goes silent and run monitoring judges the run by its status.
            _log.exception("could not finish the lease of run %s", self.run_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                if not self.store.renew(self.run_id, self.task_id):
                    _log.warning("the lease of run %s was revoked: no longer renewing", self.run_id)
                    return
            except sa.exc.SQLAlchemyError:
                # Database unreachable: keep trying. If it stays away past the lease's time to
                # live, the run is failed and retried elsewhere, which is what should happen.
                _log.warning("could not renew the lease of run %s", self.run_id, exc_info=True)
