"""Deleting documents and reprocessing stale batches, each a durable change on the platform."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Request

from api.deps import Caller, Context
from api.errors import ApiError, ErrorBody
from api.guards.json_body import read_small_json
from api.models import DeletionView, ReprocessRequest, ReprocessView

router = APIRouter(tags=["lifecycle"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 404, 409, 413, 415, 422)
}
DocumentId = Annotated[str, Path(max_length=1200, description="The document's name as submitted")]
DeletionId = Annotated[str, Path(pattern=r"^d[0-9a-f]{16}$", description="d + 16 hex digits")]
BackfillId = Annotated[str, Path(pattern=r"^[a-z0-9]{1,64}$", description="Dagster backfill id")]


@router.delete(
    "/documents/{document_id:path}", status_code=202, response_model=DeletionView,
    responses=_ERRORS,
)  # fmt: skip
async def delete_document(
    document_id: DocumentId, context: Context, caller: Caller
) -> DeletionView:
    """Delete a document (and forget its text) as a run on the platform; follow it by its id.

    404 for an id never submitted, 409 while a batch holding the document is being processed.
    Asking again gives the same deletion (or the earlier one, once it is done).
    """
    status = await anyio.to_thread.run_sync(context.orchestrator.delete, [document_id])
    return DeletionView.of(status, context.settings.dagster_ui_url)


@router.get("/deletions/{deletion_id}", response_model=DeletionView, responses=_ERRORS)
def get_deletion(deletion_id: DeletionId, context: Context, caller: Caller) -> DeletionView:
    """A deletion's state, documents, runs and counts."""
    status = context.orchestrator.deletion(deletion_id)
    return DeletionView.of(status, context.settings.dagster_ui_url)


@router.post(
    "/reprocess", status_code=202, response_model=ReprocessView, responses=_ERRORS,
    openapi_extra={"requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ReprocessRequest.model_json_schema()}},
    }},
)  # fmt: skip
async def reprocess(request: Request, context: Context, caller: Caller) -> ReprocessView:
    """Re-materialise the named batches, or every stale one, as one Dagster backfill.

    The body is read by ``read_small_json`` (its own 1 MiB bound), not by FastAPI, which
    would buffer and parse anything up to the upload limit first.
    """
    body = await read_small_json(request, ReprocessRequest)
    if bool(body.batches) == body.stale:
        raise ApiError(422, "invalid_request", "give `batches` or `stale: true` (not both)")
    status = await anyio.to_thread.run_sync(_reprocess, context, body)
    return ReprocessView.of(status, context.settings.dagster_ui_url)


@router.get("/reprocess/{backfill_id}", response_model=ReprocessView, responses=_ERRORS)
def get_reprocess(backfill_id: BackfillId, context: Context, caller: Caller) -> ReprocessView:
    """A reprocessing backfill's state and runs."""
    status = context.orchestrator.reprocess_status(backfill_id)
    return ReprocessView.of(status, context.settings.dagster_ui_url)


def _reprocess(context: Context, body: ReprocessRequest) -> Any:
    orchestrator = context.orchestrator
    batch_ids = [s.batch_id for s in orchestrator.stale()] if body.stale else body.batches
    if not batch_ids:
        raise ApiError(409, "nothing_stale", "no batch is stale: nothing to reprocess")
    return orchestrator.reprocess(batch_ids)
