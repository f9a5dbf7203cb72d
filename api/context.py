"""What every request shares: settings, the Orchestrator, the graph store and the guards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import sqlalchemy as sa

from api.guards.auth import TokenAuthority
from api.guards.ontology import OntologyGuard
from api.guards.stream_limits import StreamLimiter
from api.tail import EventTail
from knowledge_assets.settings import Settings

if TYPE_CHECKING:
    from knowledge_assets.orchestration.orchestrator import Orchestrator
    from knowledge_assets.pipeline.ontology import Ontology

__all__ = ["ApiContext", "api_context"]


@dataclass
class ApiContext:
    """Built once per API process by the app's lifespan."""

    settings: Settings
    orchestrator: Orchestrator
    authority: TokenAuthority
    limiter: StreamLimiter
    tail: EventTail
    ontology_guard: OntologyGuard

    @cached_property
    def engine(self) -> sa.Engine:
        """The graph store's engine (pooled, migrated), for the graph queries."""
        from knowledge_assets.db.engine import get_engine

        return get_engine(self.settings)

    @cached_property
    def ontology(self) -> Ontology:
        """The platform's configured ontology."""
        from knowledge_assets.pipeline.ontology import load_ontology

        return load_ontology(self.settings.ontology)


@contextmanager
def api_context(settings: Settings) -> Iterator[ApiContext]:
    """Open the Orchestrator for the process's lifetime; refuse to run without a token."""
    if settings.api_token is None:
        raise RuntimeError("KNOWLEDGE_API_TOKEN is not set: the API never runs unauthenticated")
    from knowledge_assets.orchestration.orchestrator import Orchestrator
    from knowledge_assets.pipeline.ontology import load_ontology
    from knowledge_assets.pipeline.ontology_check import ExpectedOntology

    authority = TokenAuthority(settings.api_token, settings.api_stream_token_ttl_s)
    limiter = StreamLimiter(
        settings.api_max_streams_per_token, retry_after_s=int(settings.api_stream_heartbeat_s)
    )
    ontology_guard = OntologyGuard(
        ExpectedOntology.of(load_ontology(settings.ontology)),
        max_bytes=settings.api_max_ontology_bytes,
        timeout_s=settings.api_ontology_check_timeout_s,
    )
    with Orchestrator.for_settings(settings) as orchestrator:
        tail = EventTail(
            orchestrator.event_feed,
            orchestrator.commit_horizon(),
            poll_s=settings.api_stream_poll_s,
            keep=settings.api_stream_keep_events,
        )
        yield ApiContext(settings, orchestrator, authority, limiter, tail, ontology_guard)
