"""Reading a submitted batch from a request: JSON documents or a multipart upload of files.

Uploaded file names are only ever metadata: the bytes are kept in memory or in anonymous
temporary files while parsing, and the batch storage files them under their content hash. Names
are made document names by ``document_name``, as every way in does (``/`` between folders, each
part cleaned of controls and leading dots, bounded length) before anything else sees them, and
nothing builds a path from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.requests import Request

from api.errors import ApiError
from api.guards.body_limit import BodyTooLarge
from api.guards.json_body import JsonBatchReader
from knowledge_assets.pipeline.documents import document_name
from knowledge_assets.pipeline.models import DocumentInput

__all__ = ["ALLOWED_FILE_TYPES", "Submission", "read_submission"]

# What browsers and curl send for .txt and .md files; anything else is refused by type.
ALLOWED_FILE_TYPES = frozenset(
    {"text/plain", "text/markdown", "text/x-markdown", "application/octet-stream"}
)
ONTOLOGY_FIELD = "ontology"


@dataclass(frozen=True)
class Submission:
    """The documents of a submission, and its ontology text if one was sent."""

    documents: list[DocumentInput]
    ontology: str | None


async def read_submission(request: Request, *, max_files: int, max_bytes: int) -> Submission:
    """Parse the body by its content type; refuse other types with 415."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        return await _from_json(request, max_files)
    if media_type == "multipart/form-data":
        return await _from_multipart(request, max_files, max_bytes)
    raise ApiError(
        415,
        "unsupported_media_type",
        "send application/json or multipart/form-data (files of type text/plain or text/markdown)",
    )


async def _from_json(request: Request, max_files: int) -> Submission:
    reader = JsonBatchReader(max_files)
    async for chunk in request.stream():
        reader.feed(chunk)
    body = reader.finish()
    documents = [
        DocumentInput(name=document_name(d.id), data=d.text.encode("utf-8")) for d in body.documents
    ]
    return Submission(documents, body.ontology)


async def _from_multipart(request: Request, max_files: int, max_bytes: int) -> Submission:
    try:
        form = await request.form(max_files=max_files, max_fields=8, max_part_size=max_bytes)
    except BodyTooLarge:
        raise
    except Exception as exc:  # the multipart parser's errors share no base class
        raise ApiError(400, "invalid_multipart", f"could not read the upload: {exc}") from exc
    documents: list[DocumentInput] = []
    ontology: str | None = None
    try:
        for field, value in form.multi_items():
            if isinstance(value, UploadFile):
                documents.append(await _document(field, value))
            elif field == ONTOLOGY_FIELD:
                ontology = value
    finally:
        await form.close()
    if not documents:
        raise ApiError(422, "no_documents", "the upload holds no files")
    return Submission(documents, ontology)


async def _document(field: str, upload: UploadFile) -> DocumentInput:
    content_type = (upload.content_type or "application/octet-stream").split(";")[0].lower()
    name = document_name(upload.filename or field)
    if content_type not in ALLOWED_FILE_TYPES:
        raise ApiError(
            415,
            "unsupported_file_type",
            f"file {name[:200]!r} has type {content_type[:100]!r}: send text/plain or markdown",
        )
    return DocumentInput(name=name, data=await upload.read())
