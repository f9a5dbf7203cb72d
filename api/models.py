"""Request and response bodies of the API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from knowledge_assets.orchestration.state import BatchStatus, StageProgress
from knowledge_assets.pipeline.progress import STAGES

__all__ = [
    "BatchAccepted",
    "BatchPage",
    "BatchView",
    "DocumentIn",
    "EntityDetail",
    "EntityPage",
    "EntitySummary",
    "Health",
    "MentionView",
    "ProgressView",
    "RelationView",
    "StreamToken",
    "SubmitJson",
]


class DocumentIn(BaseModel):
    """One document submitted as JSON; ``id`` becomes its name (metadata only, never a path)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=4096)
    text: str


class SubmitJson(BaseModel):
    """A batch as JSON; ``ontology`` (Turtle), if given, must be the platform's ontology."""

    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1)
    ontology: str | None = None


class BatchAccepted(BaseModel):
    """The answer to a submission: the same content always gives the same ``batch_id``."""

    batch_id: str
    state: str
    events_url: str
    dagster_url: str


class ProgressView(StageProgress):
    """Counts per stage."""

    # Never part of the API's JSON (clients see refusals in ``documents``); kept out so that
    # returning the state model changes nothing a client reads.
    rejected: int = Field(default=0, exclude=True)


class BatchView(BatchStatus):
    """A batch: its state in the state machine, current stage, counts, errors, runs and links."""

    progress: ProgressView  # always sent, so required in the schema
    events_url: str
    dagster_url: str

    @classmethod
    def of(cls, status: BatchStatus, dagster_ui: str) -> BatchView:
        """``status`` with the links to its event stream and its partition in the Dagster UI."""
        return cls(
            **status.model_dump(),
            events_url=events_link(status.batch_id),
            dagster_url=dagster_link(dagster_ui, status.batch_id),
        )


def events_link(batch_id: str) -> str:
    """The batch's SSE stream, relative to the API's root."""
    return f"/batches/{batch_id}/events"


def dagster_link(dagster_ui: str, batch_id: str) -> str:
    """The batch's partition of its assets in the Dagster UI."""
    return f"{dagster_ui}/assets/ingested_graph?view=partitions&partition={batch_id}"


class BatchPage(BaseModel):
    """One page of batches, newest first, and the pipeline's stages in order."""

    items: list[BatchView]
    offset: int
    limit: int
    stages: list[str] = Field(default_factory=lambda: list(STAGES))


class StreamToken(BaseModel):
    """A short-lived token for ``GET /batches/{id}/events?access_token=``."""

    token: str
    expires_in: int


class EntitySummary(BaseModel):
    """An entity of the graph store with its types and aliases."""

    id: str
    name: str
    types: list[str]
    aliases: list[str]


class EntityPage(BaseModel):
    """Entities matching a query."""

    items: list[EntitySummary]
    offset: int
    limit: int


class MentionView(BaseModel):
    """Where an entity is mentioned: a span of a document's text."""

    id: str
    document_id: str
    document: str
    start: int
    end: int
    text: str
    label: str


class RelationView(BaseModel):
    """A relation in or out of an entity."""

    id: str
    subject_id: str
    predicate: str
    object_id: str | None
    object_literal: str | None


class EntityDetail(EntitySummary):
    """An entity with its mentions and its relations in and out."""

    mentions: list[MentionView]
    relations_out: list[RelationView]
    relations_in: list[RelationView]


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    checks: dict[str, str] = {}
