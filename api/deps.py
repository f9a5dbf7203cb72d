"""Route dependencies: the shared context and the caller's identity, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import ApiContext
from api.guards.auth import Principal

__all__ = ["Caller", "Context", "StreamCaller"]

# auto_error=False: a missing header must give our JSON 401, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="KNOWLEDGE_API_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_context(request: Request) -> ApiContext:
    """The process's ``ApiContext``, put on the app state by the lifespan."""
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(get_context)]


def require_bearer(context: Context, credentials: Credentials) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 otherwise."""
    return context.authority.check_bearer(_header(credentials))


def require_stream_access(
    context: Context,
    credentials: Credentials,
    access_token: Annotated[
        str | None,
        Query(description="Signed token from POST /auth/stream-token (for EventSource)."),
    ] = None,
) -> Principal:
    """The caller, from the bearer header or a signed stream token in the query string."""
    if access_token is not None and credentials is None:
        return context.authority.check_stream_token(access_token)
    return context.authority.check_bearer(_header(credentials))


def _header(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return f"{credentials.scheme} {credentials.credentials}" if credentials else None


Caller = Annotated[Principal, Depends(require_bearer)]
StreamCaller = Annotated[Principal, Depends(require_stream_access)]
