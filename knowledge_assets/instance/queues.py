"""Kinds of runs and the Celery queue each goes to: one source for the job tags and the routing.

Offline extraction is CPU-bound (one pool child per core), LLM extraction waits on the network
(many children per core), the registry merge is serialised (Dagster's tag limit ``registry: 1``
is the guarantee; its queue lets a deployment give it a small worker of its own).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ALL_QUEUES",
    "EXTRACTION",
    "QUEUE_LLM",
    "QUEUE_OFFLINE",
    "QUEUE_REGISTRY",
    "REGISTRY",
    "RUN_KIND_TAG",
    "queue_for",
]

RUN_KIND_TAG = "knowledge/run"
EXTRACTION = "extraction"
REGISTRY = "registry"

QUEUE_OFFLINE = "extraction"
QUEUE_LLM = "extraction-llm"
QUEUE_REGISTRY = "registry"
ALL_QUEUES = (QUEUE_OFFLINE, QUEUE_LLM, QUEUE_REGISTRY)


def queue_for(tags: Mapping[str, str], extractor: str) -> str:
    """The queue of a run with ``tags``, extracting with ``extractor`` (``offline`` or ``llm``).

    Anything that is not a registry run is extraction work (the batch job, and asset runs a user
    starts from the UI), routed by the platform's configured extractor.
    """
    if tags.get(RUN_KIND_TAG) == REGISTRY:
        return QUEUE_REGISTRY
    return QUEUE_LLM if extractor == "llm" else QUEUE_OFFLINE
