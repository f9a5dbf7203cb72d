"""The highest event-log id below which no record can still appear: the tail's safe cursor.

Dagster's ``event_logs.id`` comes from a sequence, and writers commit independently (each event
is its own autocommit INSERT), so ids become visible out of order: a reader that moved past a
still-uncommitted id 100 because it saw 101 would never deliver 100. The horizon ``H`` is a
promise that every id ``<= H`` is final: committed and visible, or never going to be.

How ``H`` advances, and why each step keeps the promise:

* **Contiguous ids.** When ``H+1 .. M`` are all visible, every id up to ``M`` is committed, so
  ``H = M`` at once. This is the common case and costs one indexed query per tick.
* **A gap** (some id above ``H`` missing, a larger one visible) means an id was allocated and
  is not visible: its writer is still running, or rolled back, or the row was deleted. We then
  record a *barrier*: the largest visible id ``U`` and the virtual transaction ids (every
  transaction holds a lock on its own, ``pg_locks.virtualxid``) of every transaction open in
  this database, read *after* ``U`` was seen. Once all of those transactions have ended, every
  id ``<= U`` is final and ``H`` moves to ``U``. Proof: the sequence hands out values in real
  time order (``cache_size`` 1, checked), so a missing ``g < U`` was allocated before ``U``,
  which was committed before we saw it; the transaction that allocated ``g`` was therefore
  already open when we listed the open transactions (or had ended, and then ``g`` is final).
  Virtual ids, not ``pg_current_snapshot()``'s xids: a transaction gets an xid only when it
  first writes, after ``nextval`` has run inside its INSERT, so an xid snapshot misses a writer
  caught between the two; the virtual id exists from the transaction's first statement.
* A barrier usually clears within one tick (event writes take milliseconds). A transaction in
  this database that stays open for ``gap_timeout_s`` (an idle session, a long report) blocks
  the proof; then the gap is passed with a warning so streams never stall for good. That last
  resort is the only place a time assumption remains, and it needs a writer stuck between
  ``nextval`` and commit for that long.

Reading the lock table is cheap but not free, so it happens only while a gap is open.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa

__all__ = ["CommitHorizon"]

_log = logging.getLogger(__name__)
_SCAN = 5000
_IDS_AFTER = sa.text("SELECT id FROM event_logs WHERE id > :after ORDER BY id LIMIT :n")
_MAX_ID = sa.text("SELECT coalesce(max(id), 0) FROM event_logs")
# Every open transaction of this database but ours. A backend's row in pg_stat_activity exists
# from its start, so a transaction that was open when the ids were read is always listed.
_OPEN_TRANSACTIONS = sa.text(
    "SELECT l.virtualxid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'virtualxid' AND l.mode = 'ExclusiveLock' AND l.granted"
    " AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
)
_SEQUENCE_CACHE = sa.text(
    "SELECT cache_size FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename)"
    " = pg_get_serial_sequence('event_logs', 'id')"
)


@dataclass(frozen=True)
class _Barrier:
    """Every id ``<= upto`` is final once none of ``open`` is still running."""

    upto: int
    open: frozenset[str]
    since: float


class CommitHorizon:
    """Advances the safe cursor of Dagster's event log; ``advance`` is called from one thread."""

    def __init__(self, engine: sa.Engine, *, gap_timeout_s: float) -> None:
        self.engine = engine
        self.gap_timeout_s = gap_timeout_s
        self.value = 0
        self._started = False
        self._barriers: list[_Barrier] = []
        self._provable = True

    def advance(self) -> int:
        """Read what became visible, move the horizon as far as provable, and return it."""
        with self.engine.connect() as connection:
            if not self._started:
                self._start(connection)
            else:
                self._step(connection)
        return self.value

    def _start(self, connection: sa.Connection) -> None:
        # Before the first barrier clears nothing is known, not even that old ids are final.
        cache = connection.execute(_SEQUENCE_CACHE).scalar()
        self._provable = cache in (None, 1)
        if not self._provable:
            _log.warning("event_logs ids are cached by %s: gaps wait for the timeout", cache)
        top = int(connection.execute(_MAX_ID).scalar_one())
        self._barriers.append(_Barrier(top, self._open(connection), time.monotonic()))
        self._started = True
        self._clear_barriers(connection)

    def _step(self, connection: sa.Connection) -> None:
        visible = list(connection.execute(_IDS_AFTER, {"after": self.value, "n": _SCAN}).scalars())
        rest = self._walk(visible)
        if not rest and not self._barriers:
            return
        self._clear_barriers(connection)
        rest = self._walk([i for i in rest if i > self.value])
        if rest and not any(b.upto >= rest[-1] for b in self._barriers):
            self._barriers.append(_Barrier(rest[-1], self._open(connection), time.monotonic()))

    def _walk(self, visible: list[int]) -> list[int]:
        """Advance over contiguous ids; return the visible ids beyond the first gap."""
        for index, storage_id in enumerate(visible):
            if storage_id > self.value + 1:
                return visible[index:]
            self.value = max(self.value, storage_id)
        return []

    def _clear_barriers(self, connection: sa.Connection) -> None:
        if not self._barriers:
            return
        running = self._open(connection) if self._provable else frozenset()
        now = time.monotonic()
        kept = []
        for barrier in self._barriers:
            ended = self._provable and not (barrier.open & running)
            if ended or now - barrier.since >= self.gap_timeout_s:
                if not ended:
                    _log.warning(
                        "passing event-log ids up to %s after %.1f s: open transactions %s",
                        barrier.upto, now - barrier.since, sorted(barrier.open & running),
                    )  # fmt: skip
                self.value = max(self.value, barrier.upto)
            else:
                kept.append(barrier)
        self._barriers = kept

    def _open(self, connection: sa.Connection) -> frozenset[str]:
        return frozenset(connection.execute(_OPEN_TRANSACTIONS).scalars())
