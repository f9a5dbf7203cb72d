"""The FastAPI application: routers, error shape, body limit and the process-wide context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from api.context import api_context
from api.errors import install_error_handlers
from api.guards.body_limit import BodyLimitMiddleware
from api.routes import batches, entities, events, health, page, schema
from knowledge_assets.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings) -> FastAPI:
    """A ready app for ``settings``; the Orchestrator opens when the server starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with api_context(settings) as context:
            app.state.context = context
            await anyio.to_thread.run_sync(context.ontology_guard.warm_up)
            async with context.tail.running():
                yield

    app = FastAPI(
        title="knowledge-assets API",
        version="1",
        summary="Submit document batches, follow their progress, query the knowledge graph.",
        lifespan=lifespan,
        # The schema is served behind the token (routes.schema); the browsable docs could not
        # send one, so they are off.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    for module in (health, batches, events, entities, page, schema):
        app.include_router(module.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_upload_bytes)
    return app
