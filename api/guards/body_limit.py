"""Request bodies larger than the limit are refused with 413 before they are buffered.

A declared ``Content-Length`` over the limit is answered at once, without reading a byte of the
body. A body without one (chunked) or one that lies is counted while the app reads it, and the
read fails as soon as the count passes the limit: at most one network chunk past the limit is
ever held.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

__all__ = ["BodyLimitMiddleware", "BodyTooLarge"]


class BodyTooLarge(Exception):
    """The body passed the limit while being read."""


class BodyLimitMiddleware:
    """Pure ASGI middleware, so it sees the body stream before any framework buffers it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse early by header, else count the body as it streams through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        started = False
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"request body over {self.max_bytes} bytes (KNOWLEDGE_API_MAX_UPLOAD_BYTES)",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
