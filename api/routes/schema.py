"""The OpenAPI schema, behind the bearer token like every other route but the health checks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import Caller

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
def openapi(request: Request, caller: Caller) -> dict[str, Any]:
    """The API's OpenAPI document."""
    schema: dict[str, Any] = request.app.openapi()
    return schema
