"""Errors as JSON with a stable machine-readable code: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from knowledge_assets.orchestration.lifecycle import (
    BatchesBusy,
    DocumentsBusy,
    UnknownBackfill,
    UnknownDeletion,
)
from knowledge_assets.pipeline.batches import NothingAccepted, UnknownBatchError
from knowledge_assets.pipeline.lifecycle.requests import UnknownDocuments

__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "RefusedDocument",
    "error_response",
    "install_error_handlers",
]


# Codes for Starlette's own errors (unknown route, wrong method, ...), so they stay stable too.
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_streams",
}


class RefusedDocument(BaseModel):
    """A document refused before extraction: its name, a stable code and the reason."""

    name: str
    code: str
    reason: str


class ErrorDetail(BaseModel):
    """What went wrong: ``code`` never changes between releases, ``message`` is for people.

    ``documents`` is sent only with ``all_documents_refused``: each document and why.
    """

    code: str
    message: str
    documents: list[RefusedDocument] | None = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """Raised by routes and dependencies; rendered as an ``ErrorBody`` with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    documents: list[RefusedDocument] | None = None,
) -> JSONResponse:
    """The JSON response for an error."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message, documents=documents))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


# The control plane's own errors, each with its HTTP status, code and message.
DOMAIN_ERRORS: dict[type[Exception], tuple[int, str, Callable[[Exception], str]]] = {
    UnknownBatchError: (404, "batch_not_found", lambda e: f"no batch {e.args[0]!r}"),
    UnknownDocuments: (404, "document_not_found", str),
    UnknownDeletion: (404, "deletion_not_found", lambda e: f"no deletion {e.args[0]!r}"),
    UnknownBackfill: (404, "backfill_not_found", lambda e: f"no reprocessing {e.args[0]!r}"),
    DocumentsBusy: (409, "document_busy", str),
    BatchesBusy: (409, "batch_busy", str),
}


def _domain_handler(
    status: int, code: str, message: Callable[[Exception], str]
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return error_response(status, code, message(exc))

    return handle


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the app can raise in the one JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    for kind, (status, code, message) in DOMAIN_ERRORS.items():
        app.add_exception_handler(kind, _domain_handler(status, code, message))

    @app.exception_handler(NothingAccepted)
    async def _all_refused(request: Request, exc: NothingAccepted) -> JSONResponse:
        documents = [
            RefusedDocument(name=r.name, code=r.code, reason=r.reason) for r in exc.rejections
        ]
        message = f"every document was refused ({len(documents)}); nothing was submitted"
        return error_response(422, "all_documents_refused", message, documents=documents)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return error_response(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still logs the traceback; the client gets the documented shape, not text.
        if _database_unreachable(exc):
            return error_response(
                503,
                "database_unavailable",
                "the database does not answer; try again shortly",
                headers={"Retry-After": "5"},
            )
        return error_response(500, "internal_error", "unexpected error; see the API's log")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, str(exc.detail), headers)


def _database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a lost connection to PostgreSQL.

    Dagster's storage wraps the driver's error in its own exception (``raise ... from``), so
    the whole chain is looked at.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.OperationalError | sqlalchemy.exc.TimeoutError):
            return True
        if type(current).__name__ == "OperationalError":  # psycopg2's own, unwrapped
            return True
        current = current.__cause__ or current.__context__
    return False
