"""What every request shares: settings, the Orchestrator, the graph store and the guards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from api.auth import TokenAuthority
from api.stream_limits import StreamLimiter
from knowledge_assets.settings import Settings

__all__ = ["ApiContext", "api_context"]


@dataclass
class ApiContext:
    """Built once per API process by the app's lifespan."""

    settings: Settings
    orchestrator: Any
    authority: TokenAuthority
    limiter: StreamLimiter

    @property
    def instance(self) -> Any:
        """The Dagster instance the Orchestrator uses (runs and event log)."""
        return self.orchestrator.instance

    @cached_property
    def engine(self) -> sa.Engine:
        """The graph store's engine (pooled, migrated)."""
        from knowledge_assets.db.engine import get_engine

        return get_engine(self.settings)

    @cached_property
    def ontology(self) -> Any:
        """The platform's configured ontology."""
        from knowledge_assets.pipeline.ontology import load_ontology

        return load_ontology(self.settings.ontology)


@contextmanager
def api_context(settings: Settings) -> Iterator[ApiContext]:
    """Open the Orchestrator for the process's lifetime; refuse to run without a token."""
    if settings.api_token is None:
        raise RuntimeError("KNOWLEDGE_API_TOKEN is not set: the API never runs unauthenticated")
    from knowledge_assets.orchestration.orchestrator import Orchestrator

    authority = TokenAuthority(settings.api_token, settings.api_stream_token_ttl_s)
    limiter = StreamLimiter(
        settings.api_max_streams_per_token, retry_after_s=int(settings.api_stream_heartbeat_s)
    )
    with Orchestrator.for_settings(settings) as orchestrator:
        yield ApiContext(settings, orchestrator, authority, limiter)
