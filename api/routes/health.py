"""Liveness and readiness probes: the only routes without a token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import Context
from api.models import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and answering."""
    # async: answered on the event loop, never queued behind busy worker threads.
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(context: Context) -> Health | JSONResponse:
    """The graph store and Dagster's storage both answer."""
    checks = context.orchestrator.health()
    if all(v == "ok" for v in checks.values()):
        return Health(status="ready", checks=checks)
    body = Health(status="unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=503)
