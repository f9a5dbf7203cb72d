"""The graph: entities with their evidence, documents, and the whole graph as Turtle or JSON-LD."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from api.deps import Caller, Context
from api.errors import ApiError, ErrorBody
from api.graph_queries import entity_types, find_entities, get_document, get_entity
from api.models import DocumentView, EntityDetail, EntityPage, TypeCount

router = APIRouter(tags=["graph"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 404, 422)}
_MEDIA_TYPES = {"ttl": "text/turtle", "jsonld": "application/ld+json"}


@router.get("/entities", response_model=EntityPage, responses=_ERRORS)
def list_entities(
    context: Context,
    caller: Caller,
    q: Annotated[str | None, Query(max_length=200, description="Part of a name or alias.")] = None,
    type: Annotated[str | None, Query(max_length=200, description="Ontology class name.")] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> EntityPage:
    """Entities whose name or an alias contains q, optionally of one type."""
    items = find_entities(context.engine, q=q, type_=type, offset=offset, limit=limit)
    return EntityPage(items=items, offset=offset, limit=limit)


@router.get("/entities/{entity_id}", response_model=EntityDetail, responses=_ERRORS)
def entity(
    entity_id: Annotated[str, Path(max_length=200)], context: Context, caller: Caller
) -> EntityDetail:
    """One entity: aliases, canonical entity, mentions, relations in and out with evidence."""
    found = get_entity(context.engine, entity_id)
    if found is None:
        raise ApiError(404, "entity_not_found", f"no entity {entity_id[:200]!r}")
    return found


@router.get("/types", response_model=list[TypeCount], responses=_ERRORS)
def types(context: Context, caller: Caller) -> list[TypeCount]:
    """Every type some entity has, with its number of entities."""
    return entity_types(context.engine)


@router.get("/documents/{document_id:path}", response_model=DocumentView, responses=_ERRORS)
def document(
    document_id: Annotated[str, Path(max_length=1200)], context: Context, caller: Caller
) -> DocumentView:
    """A stored document (by the ``document_id`` of its mentions): text and mentions."""
    found = get_document(context.engine, document_id)
    if found is None:
        raise ApiError(404, "document_not_found", f"no document {document_id[:200]!r}")
    return found


@router.get(
    "/graph",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {t: {} for t in _MEDIA_TYPES.values()}}},
)
async def graph(
    context: Context,
    caller: Caller,
    format: Annotated[Literal["ttl", "jsonld"], Query()] = "ttl",
) -> Response:
    """The whole graph store as Turtle or JSON-LD."""
    text = await anyio.to_thread.run_sync(_export, context, format)
    return Response(text, media_type=_MEDIA_TYPES[format])


def _export(context: Any, fmt: Literal["ttl", "jsonld"]) -> str:
    from knowledge_assets.pipeline.export import export

    return "".join(export(context.engine, context.ontology, fmt))
