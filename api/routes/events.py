"""The SSE stream of a batch's progress, replayed after ``Last-Event-ID`` and then tailed.

Every stream of a batch reads the process's one shared tail (``api.tail``), not the database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from api.deps import Caller, Context, StreamCaller
from api.errors import ApiError, ErrorBody
from api.models import StreamToken
from api.routes.batches import BatchId
from api.tail import EventTail
from knowledge_assets.orchestration.events import EventId

router = APIRouter(tags=["events"])
_log = logging.getLogger(__name__)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 422, 429)
}


@router.post("/auth/stream-token", response_model=StreamToken, responses=_ERRORS)
def stream_token(context: Context, caller: Caller) -> StreamToken:
    """A short-lived token to open event streams from a browser's EventSource."""
    token, ttl = context.authority.issue_stream_token()
    return StreamToken(token=token, expires_in=ttl)


@router.get(
    "/batches/{batch_id}/events",
    responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}},
    response_class=EventSourceResponse,
)
def batch_events(
    batch_id: BatchId,
    request: Request,
    context: Context,
    caller: StreamCaller,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
    after: Annotated[
        str | None, Query(max_length=40, description="Resume after this event id (as header).")
    ] = None,
) -> EventSourceResponse:
    """Typed progress events; resumes after Last-Event-ID; ends after the terminal event."""
    resume_from = _parse_id(last_event_id or after)
    context.orchestrator.poll(batch_id)  # 404 for an unknown batch, before any slot is taken
    settings = context.settings
    context.limiter.acquire(caller)
    release = _once(lambda: context.limiter.release(caller))
    return EventSourceResponse(
        _events(context.tail, batch_id, resume_from, request, release),
        ping=settings.api_stream_heartbeat_s,
        send_timeout=settings.api_stream_send_timeout_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        # Also released here: a generator cancelled before its first step never runs `finally`.
        background=BackgroundTask(release),
    )


async def _events(
    tail: EventTail,
    batch_id: str,
    after: EventId | None,
    request: Request,
    release: Any,
) -> AsyncIterator[ServerSentEvent]:
    try:
        async for event in tail.follow(batch_id, after, request.is_disconnected):
            yield event
    except Exception as exc:  # the stream reports, then ends; the client resumes by its id
        _log.exception("event stream of %s failed", batch_id)
        failure = {"code": "stream_failed", "message": type(exc).__name__}
        yield ServerSentEvent(data=json.dumps(failure), event="error")
    finally:
        release()


def _parse_id(text: str | None) -> EventId | None:
    if not text:
        return None
    try:
        return EventId.parse(text)
    except ValueError as exc:
        raise ApiError(400, "invalid_last_event_id", str(exc)) from exc


def _once(action: Any) -> Any:
    done = [False]

    def run() -> None:
        if not done[0]:
            done[0] = True
            action()

    return run
