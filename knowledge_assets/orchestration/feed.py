"""Reading a batch's event-log records in storage-id order across all of its runs.

A record becomes visible when its writer commits, and concurrent writers (run worker, daemon,
step processes) can commit out of id order: a reader that moved its cursor past id 101 while id
100 was still uncommitted would never see 100. So each poll hands out records only up to a
horizon below which every id is final (``commit_horizon.py``). A run failure is also held
back until Dagster has tagged whether the run will be retried, so its event says so truthfully
on every replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, EventLogRecord

from knowledge_assets.instance.dagster_internals import WILL_RETRY_TAG, records_after
from knowledge_assets.orchestration.events import BatchEvent, EventTranslator

__all__ = ["BatchEventFeed", "FeedPoll", "RunIds"]

RunIds = Callable[[str], list[str]]
_PAGE = 500
# Longest wait for Dagster to tag a failed run with whether it will be retried.
_RETRY_TAG_GRACE_S = 10.0


@dataclass(frozen=True)
class FeedPoll:
    """New events since the last poll, and whether the batch has reached its end."""

    events: list[BatchEvent]
    finished: bool
    more: bool = False


class BatchEventFeed:
    """Translates a batch's records into events; each ``poll`` continues where the last ended."""

    def __init__(self, instance: DagsterInstance, run_ids: RunIds, batch_id: str) -> None:
        self.instance = instance
        self.run_ids = run_ids
        self.batch_id = batch_id
        self.translator = EventTranslator(batch_id)
        self._cursor = 0
        self._last_run_fed: str | None = None
        self._runs: dict[str, DagsterRun] = {}

    def poll(self, horizon: int, now: float | None = None) -> FeedPoll:
        """Read what is new up to ``horizon``, translate it, and say if the stream can end."""
        now = time.time() if now is None else now
        run_ids = self.run_ids(self.batch_id)
        records, more = self._new_records(run_ids)
        events: list[BatchEvent] = []
        for record in records:
            if record.storage_id > horizon or not self._ready(record, now):
                return FeedPoll(events, finished=False)
            events.extend(self.translator.feed(record, self._run(record.run_id)))
            self._cursor = record.storage_id
            self._last_run_fed = record.run_id
        return FeedPoll(events, finished=not more and self._at_end(run_ids), more=more)

    def _new_records(self, run_ids: list[str]) -> tuple[list[EventLogRecord], bool]:
        records: list[EventLogRecord] = []
        frontier: int | None = None
        for run_id in run_ids:
            page = records_after(self.instance, run_id, self._cursor, _PAGE)
            records.extend(page.records)
            if page.has_more and page.records:
                last = page.records[-1].storage_id
                frontier = last if frontier is None else min(frontier, last)
        records.sort(key=lambda r: r.storage_id)
        if frontier is not None:
            # Another run may hold unread records below this run's next page: stop at the frontier.
            return [r for r in records if r.storage_id <= frontier], True
        return records, False

    def _ready(self, record: EventLogRecord, now: float) -> bool:
        event = record.event_log_entry.dagster_event
        if event is None or not event.is_run_failure or not self.instance.run_retries_enabled:
            return True
        if WILL_RETRY_TAG in self._run(record.run_id).tags:
            return True
        self._runs.pop(record.run_id, None)
        return WILL_RETRY_TAG in self._run(record.run_id).tags or (
            now - record.timestamp >= _RETRY_TAG_GRACE_S
        )

    def _at_end(self, run_ids: list[str]) -> bool:
        if not run_ids or self._last_run_fed != run_ids[-1]:
            return False
        if self.translator.terminal:
            return True
        if not self.translator.awaiting_retry:
            return False
        # A retry that Dagster announced and then abandoned: the batch has stopped here.
        self._runs.pop(run_ids[-1], None)
        run = self._run(run_ids[-1])
        return run.status == DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) != "true"

    def _run(self, run_id: str) -> DagsterRun:
        run = self._runs.get(run_id)
        if run is None:
            run = self.instance.get_run_by_id(run_id)
            if run is None:
                raise LookupError(f"run {run_id} vanished from the run storage")
            self._runs[run_id] = run
        return run
