"""What a batch's stages are and what each reports: the one source for everyone who counts.

* ``STAGES``: the per-batch assets in execution order. The Dagster definitions are built in this
  order (and a test checks it), the state machine maps each to a batch state, the CLI and the
  web page draw one bar each.
* ``StageCounts``: the counts a stage reports. Its field names *are* the materialization
  metadata keys, so the assets write ``counts.metadata()`` and every reader gets the same model
  back with ``StageCounts.from_metadata``; no key is ever spelled twice. ``DeletionCounts``
  are the same for the deletion asset.
* Progress lines: while a stage runs it can only add plain log messages cheaply (about 4 ms each,
  see ARCHITECTURE.md), so progress travels as a log message with a fixed prefix and a JSON
  payload that followers parse back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Self

from knowledge_assets.pipeline.models import Frozen

__all__ = [
    "PROGRESS_PREFIX",
    "STAGES",
    "Counts",
    "DeletionCounts",
    "StageCounts",
    "format_progress",
    "parse_progress",
]

STAGES: tuple[str, ...] = (
    "documents",
    "chunks",
    "extractions",
    "resolved_entities",
    "validated_graph",
    "ingested_graph",
)


class Counts(Frozen):
    """Counts whose field names are their materialization metadata keys."""

    def metadata(self) -> dict[str, int | float]:
        """The counts as materialization metadata (set fields only)."""
        return self.model_dump(exclude_none=True)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Self:
        """The counts found in a materialization's metadata (other keys are ignored)."""
        found = {
            key: value
            for key, value in metadata.items()
            if key in cls.model_fields
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and (key == "seconds" or isinstance(value, int))
        }
        return cls.model_validate(found)


class StageCounts(Counts):
    """Counts reported by a stage; unset fields are counts the stage does not report.

    Every stage reports ``seconds`` (its own wall time); extraction also what it cost: chunks
    sent to the extractor, cache hits, and the prompt and completion tokens the endpoint
    counted. ``documents_deleted`` are the batch's documents a deletion forgot (left out),
    ``rows_retracted`` and ``documents_superseded`` what ingesting took out.
    """

    documents: int | None = None
    rejected: int | None = None
    documents_deleted: int | None = None
    characters: int | None = None
    chunks: int | None = None
    extractor_calls: int | None = None
    cache_hits: int | None = None
    failed_chunks: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    mentions: int | None = None
    entities: int | None = None
    relations: int | None = None
    violations: int | None = None
    quarantined: int | None = None
    rows_inserted: int | None = None
    rows_retracted: int | None = None
    documents_superseded: int | None = None
    seconds: float | None = None

    def timed(self, began: float) -> StageCounts:
        """These counts with ``seconds`` since ``began`` (a ``time.perf_counter()`` reading)."""
        return self.model_copy(update={"seconds": round(time.perf_counter() - began, 3)})


class DeletionCounts(Counts):
    """What a deletion did: documents deleted, rows retracted, and what it forgot."""

    documents_deleted: int | None = None
    documents_superseded: int | None = None
    versions_forgotten: int | None = None
    rows_retracted: int | None = None
    rows_inserted: int | None = None
    cache_entries_forgotten: int | None = None
    blobs_forgotten: int | None = None
    stored_values_rewritten: int | None = None
    inbox_copies_forgotten: int | None = None
    registry_replayed: int | None = None
    seconds: float | None = None


PROGRESS_PREFIX = "knowledge.progress "


def format_progress(stage: str, done: int, total: int, reused: int = 0) -> str:
    """The log message for ``done`` of ``total`` units (``reused`` of them from the cache)."""
    payload = {"stage": stage, "done": done, "total": total, "reused": reused}
    return PROGRESS_PREFIX + json.dumps(payload, sort_keys=True)


def parse_progress(message: str | None) -> dict[str, Any] | None:
    """The payload of a progress message, or None for any other message."""
    if not message or not message.startswith(PROGRESS_PREFIX):
        return None
    try:
        payload = json.loads(message[len(PROGRESS_PREFIX) :])
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not {"stage", "done", "total"} <= payload.keys():
        return None
    return payload
