"""The platform under ``KNOWLEDGE_HOME`` as the batch commands reach it: its Orchestrator."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from knowledge_assets.errors import UserFacingError
from knowledge_assets.settings import Settings

if TYPE_CHECKING:
    from knowledge_assets.orchestration.orchestrator import Orchestrator
    from knowledge_assets.orchestration.state import BatchStatus

__all__ = ["known_batch", "orchestrator"]


@contextlib.contextmanager
def orchestrator(settings: Settings) -> Iterator[Orchestrator]:
    """The orchestrator of the platform under ``KNOWLEDGE_HOME``."""
    from knowledge_assets.orchestration.orchestrator import Orchestrator

    with Orchestrator.for_settings(joined(settings)) as found:
        yield found


def joined(settings: Settings) -> Settings:
    """``settings`` plus what only the platform's ``cluster.env`` knows (broker, object store).

    The environment wins; the broker URL is also exported, because the run launcher (which a
    cancel goes through) reads it from the environment.
    """
    from knowledge_assets.platform.services.cluster import client_environment

    missing = {k: v for k, v in client_environment(settings.home).items() if k not in os.environ}
    if not missing:
        return settings
    os.environ.update(missing)
    fresh = Settings()
    fields = [key.removeprefix("KNOWLEDGE_").lower() for key in missing]
    return settings.model_copy(update={name: getattr(fresh, name) for name in fields})


def known_batch(orch: Orchestrator, action: str, batch_id: str, settings: Settings) -> BatchStatus:
    """``orch.<action>(batch_id)``, or a clear error when there is no such batch."""
    from knowledge_assets.pipeline.batches import UnknownBatchError

    try:
        result: BatchStatus = getattr(orch, action)(batch_id)
    except UnknownBatchError as exc:
        raise UserFacingError(f"no batch {batch_id!r} under {settings.home}") from exc
    return result
