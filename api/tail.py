"""One event-log reader per API process, fanned out to every stream of every followed batch.

Each tick the tail advances the commit horizon once (``orchestration/commit_horizon.py``) and
polls one ``BatchEventFeed`` per followed batch up to it, so the database sees one reader however
many clients follow a batch. A batch's translated events are appended to a shared, bounded log (the
newest ``KNOWLEDGE_API_STREAM_KEEP_EVENTS``); each stream is a cursor into that log and wakes
when it grows. The tail never waits for a stream: a slow stream only falls behind, and a frozen
one is dropped by the response's send timeout as before, without holding anyone else up.
Memory per stream is a cursor, not a queue of copies.

A stream whose position is older than the log (a late ``Last-Event-ID``, or a reader that fell
further behind than the log reaches) replays from the database with a private feed. Translation
is a pure function of the record sequence, so the private feed yields exactly the tail's events
with the same ids; the stream switches to the shared log as soon as the log holds the event
after its position, which gives a gap-free, duplicate-free hand-over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from bisect import bisect_right
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread
from sse_starlette import ServerSentEvent

from knowledge_assets.orchestration.commit_horizon import CommitHorizon
from knowledge_assets.orchestration.events import BatchEvent, EventId
from knowledge_assets.orchestration.feed import BatchEventFeed, FeedPoll

__all__ = ["BatchLog", "EventTail"]

_log = logging.getLogger(__name__)
Disconnected = Callable[[], Awaitable[bool]]
FeedOf = Callable[[str], BatchEventFeed]  # a batch id -> a new reader of its events
# How often a waiting stream checks its client is still there (sse-starlette also notices).
_DISCONNECT_CHECK_S = 1.0


def to_sse(event: BatchEvent) -> ServerSentEvent:
    """The wire form of an event, built once and shared by every stream."""
    return ServerSentEvent(
        data=event.model_dump_json(exclude_none=True), event=event.kind, id=event.id
    )


class BatchLog:
    """The newest ``keep`` events of one batch, and whether its feed has ended or failed."""

    def __init__(self, feed: BatchEventFeed, keep: int) -> None:
        self.feed = feed
        self.keep = keep
        self.ids: list[EventId] = []
        self.events: list[ServerSentEvent] = []
        self.evicted: EventId | None = None
        self.finished = False
        self.more = False
        self.failure: str | None = None
        self.streams = 0
        self.changed = asyncio.Event()

    def covers(self, position: EventId | None) -> bool:
        """Whether the log holds every event after ``position`` (None: from the start)."""
        if self.evicted is None:
            return True
        return position is not None and position >= self.evicted

    def since(self, position: EventId | None) -> list[tuple[EventId, ServerSentEvent]]:
        """The events after ``position`` (call only when ``covers(position)``)."""
        start = 0 if position is None else bisect_right(self.ids, position)
        return list(zip(self.ids[start:], self.events[start:], strict=True))

    def publish(self, poll: FeedPoll) -> None:
        """Append a poll's events, trim to ``keep`` and wake the streams."""
        for event in poll.events:
            self.ids.append(EventId.parse(event.id))
            self.events.append(to_sse(event))
        if len(self.ids) > 2 * self.keep:  # trim in batches: O(1) amortised per event
            cut = len(self.ids) - self.keep
            self.evicted = self.ids[cut - 1]
            del self.ids[:cut], self.events[:cut]
        self.finished, self.more = poll.finished, poll.more
        if poll.events or poll.finished:
            self._wake()

    def fail(self, message: str) -> None:
        """The feed raised: streams send an ``error`` event and end; clients resume by id."""
        self.failure = message
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass
class _Position:
    last: EventId | None
    ended: bool = False


class EventTail:
    """Follows the batches that have open streams; started and stopped by the app's lifespan."""

    def __init__(
        self,
        feed_of: FeedOf,
        horizon: CommitHorizon,
        *,
        poll_s: float,
        keep: int,
    ) -> None:
        self.feed_of = feed_of
        self.horizon = horizon
        self.poll_s = poll_s
        self.keep = keep
        self.logs: dict[str, BatchLog] = {}
        self._followed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[EventTail]:
        """Run the reader for the duration of the block."""
        task = asyncio.create_task(self._run(), name="event-tail")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def follow(
        self, batch_id: str, after: EventId | None, disconnected: Disconnected
    ) -> AsyncIterator[ServerSentEvent]:
        """The batch's events after ``after``, live, until its terminal event."""
        log = self._join(batch_id)
        position = _Position(after)
        try:
            while not position.ended:
                if log.covers(position.last):
                    async for event in self._from_log(log, position, disconnected):
                        yield event
                else:
                    async for event in self._replay(log, position):
                        yield event
        finally:
            self._leave(batch_id, log)

    async def _from_log(
        self, log: BatchLog, position: _Position, disconnected: Disconnected
    ) -> AsyncIterator[ServerSentEvent]:
        while log.covers(position.last):
            changed = log.changed
            pending = log.since(position.last)
            for event_id, event in pending:
                yield event
                position.last = event_id
            if pending:
                continue
            if log.failure is not None:
                position.ended = True
                yield _failure(log.failure)
                return
            if log.finished or await disconnected():
                position.ended = True
                return
            with anyio.move_on_after(_DISCONNECT_CHECK_S):
                await changed.wait()

    async def _replay(self, log: BatchLog, position: _Position) -> AsyncIterator[ServerSentEvent]:
        feed = self.feed_of(log.feed.batch_id)
        while not log.covers(position.last):
            poll = await anyio.to_thread.run_sync(feed.poll, self.horizon.value)
            for event in poll.events:
                event_id = EventId.parse(event.id)
                if position.last is None or event_id > position.last:
                    yield to_sse(event)
                    position.last = event_id
            if poll.finished:
                position.ended = True
                return
            if not poll.more:
                await anyio.sleep(self.poll_s)

    def _join(self, batch_id: str) -> BatchLog:
        log = self.logs.get(batch_id)
        # A finished log is not reused: the batch may have been resumed since it ended.
        if log is None or log.failure is not None or log.finished:
            feed = self.feed_of(batch_id)
            log = self.logs[batch_id] = BatchLog(feed, self.keep)
            self._followed.set()
        log.streams += 1
        return log

    def _leave(self, batch_id: str, log: BatchLog) -> None:
        log.streams -= 1
        if log.streams <= 0 and self.logs.get(batch_id) is log:
            del self.logs[batch_id]

    async def _run(self) -> None:
        while True:
            logs = [log for log in self.logs.values() if not log.finished and log.failure is None]
            if not logs:
                self._followed.clear()
                await self._followed.wait()
                continue
            began = anyio.current_time()
            try:
                await self._tick(logs)
            except Exception as exc:  # the reader must outlive any one tick, or streams hang
                _log.exception("event tail tick failed")
                for log in logs:
                    log.fail(type(exc).__name__)
            if not any(log.more for log in logs):
                # A fixed rate: the tick's own time does not add to the next event's wait.
                await anyio.sleep(max(0.0, began + self.poll_s - anyio.current_time()))

    async def _tick(self, logs: list[BatchLog]) -> None:
        try:
            horizon = await anyio.to_thread.run_sync(self.horizon.advance)
        except Exception as exc:  # the database is away: streams report it, clients resume
            _log.exception("reading the event-log horizon failed")
            for log in logs:
                log.fail(type(exc).__name__)
            return
        polls = await anyio.to_thread.run_sync(_poll_all, logs, horizon)
        for log, poll in zip(logs, polls, strict=True):
            if isinstance(poll, FeedPoll):
                log.publish(poll)
            else:
                log.fail(poll)


def _poll_all(logs: list[BatchLog], horizon: int) -> list[FeedPoll | str]:
    results: list[FeedPoll | str] = []
    for log in logs:
        try:
            results.append(log.feed.poll(horizon))
        except Exception as exc:  # one batch's failure must not end the others' streams
            _log.exception("event feed of %s failed", log.feed.batch_id)
            results.append(type(exc).__name__)
    return results


def _failure(message: str) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps({"code": "stream_failed", "message": message}), event="error"
    )
