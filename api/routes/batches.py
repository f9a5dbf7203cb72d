"""Batches: submit, list, look up, interrupt and resume, all keyed by batch id."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request

from api.deps import Caller, Context
from api.errors import ErrorBody
from api.guards.uploads import read_submission
from api.models import BatchAccepted, BatchPage, BatchView, SubmitJson, dagster_link, events_link
from knowledge_assets.orchestration.state import BatchStatus
from knowledge_assets.pipeline.batches import BATCH_ID
from knowledge_assets.pipeline.models import DocumentInput

router = APIRouter(prefix="/batches", tags=["batches"])

BatchId = Annotated[str, Path(pattern=BATCH_ID.pattern, description="b + 16 hex digits")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 404, 413, 415, 422)
}


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local ``$defs`` references replaced by the definitions themselves.

    The body is parsed by hand (JSON or multipart), so its models are not in the OpenAPI
    components, where a ``#/$defs/...`` reference could be resolved.
    """
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return dict(resolve(schema))


_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline_defs(SubmitJson.model_json_schema())},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "ontology": {"type": "string"},
                    },
                    "required": ["files"],
                }
            },
        },
    }
}


@router.post(
    "", status_code=202, response_model=BatchAccepted, responses=_ERRORS,
    openapi_extra=_UPLOAD_SCHEMA,
)  # fmt: skip
async def submit_batch(request: Request, context: Context, caller: Caller) -> BatchAccepted:
    """Submit documents as JSON or as uploaded files; the same submission gives the same batch.

    A submission whose every document is refused gets 422 ``all_documents_refused`` with each
    document's reason, and nothing is queued.
    """
    settings = context.settings
    submission = await read_submission(
        request, max_files=settings.api_max_upload_files, max_bytes=settings.api_max_upload_bytes
    )
    if submission.ontology is not None:
        await context.ontology_guard.check(submission.ontology)
    status = await anyio.to_thread.run_sync(_submit, context, submission.documents)
    return BatchAccepted(
        batch_id=status.batch_id,
        state=str(status.state),
        events_url=events_link(status.batch_id),
        dagster_url=dagster_link(settings.dagster_ui_url, status.batch_id),
    )


@router.get("", response_model=BatchPage, responses=_ERRORS)
def list_batches(
    context: Context,
    caller: Caller,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> BatchPage:
    """Batches, newest first, one page at a time."""
    statuses = context.orchestrator.list_batches(offset=offset, limit=limit)
    ui = context.settings.dagster_ui_url
    return BatchPage(items=[BatchView.of(s, ui) for s in statuses], offset=offset, limit=limit)


@router.get("/{batch_id}", response_model=BatchView, responses=_ERRORS)
def get_batch(batch_id: BatchId, context: Context, caller: Caller) -> BatchView:
    """A batch's state, current stage, counts per stage, errors and runs."""
    return BatchView.of(context.orchestrator.poll(batch_id), context.settings.dagster_ui_url)


@router.post("/{batch_id}/interrupt", response_model=BatchView, responses=_ERRORS)
def interrupt_batch(batch_id: BatchId, context: Context, caller: Caller) -> BatchView:
    """Really stop the batch's running run; the batch stays resumable."""
    status = context.orchestrator.interrupt(batch_id)
    return BatchView.of(status, context.settings.dagster_ui_url)


@router.post("/{batch_id}/resume", response_model=BatchView, responses=_ERRORS)
def resume_batch(batch_id: BatchId, context: Context, caller: Caller) -> BatchView:
    """Re-execute the batch from its failure (nothing happens to a finished batch)."""
    status = context.orchestrator.resume(batch_id)
    return BatchView.of(status, context.settings.dagster_ui_url)


def _submit(context: Context, documents: list[DocumentInput]) -> BatchStatus:
    """Stage and start; raises ``NothingAccepted`` (a 422) when every document is refused."""
    return context.orchestrator.submit(documents, source="api")
