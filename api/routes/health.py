"""Liveness and readiness probes: the only routes without a token."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import Context
from api.models import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up and answering."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(context: Context) -> Health | JSONResponse:
    """The graph store and Dagster's storage both answer."""
    checks = {"database": _check(lambda: _ping(context.engine))}
    checks["dagster"] = _check(lambda: context.instance.get_runs_count())
    if all(v == "ok" for v in checks.values()):
        return Health(status="ready", checks=checks)
    body = Health(status="unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=503)


def _ping(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as exc:  # any failure means not ready; the reason goes in the body
        return f"error: {type(exc).__name__}"
    return "ok"
