"""Request and response bodies of the API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from knowledge_assets.orchestration.state import BatchStatus, StageProgress
from knowledge_assets.pipeline.progress import STAGES

__all__ = [
    "BatchAccepted",
    "BatchPage",
    "BatchView",
    "CanonicalView",
    "DocumentIn",
    "DocumentMention",
    "DocumentView",
    "EntityDetail",
    "EntityPage",
    "EntityRef",
    "EntitySummary",
    "EvidenceView",
    "Health",
    "MentionView",
    "ProgressView",
    "RelationView",
    "StreamToken",
    "SubmitJson",
    "TypeCount",
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
    """The answer to a submission: the same submission always gives the same ``batch_id``."""

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
    run_url: str | None = None

    @classmethod
    def of(cls, status: BatchStatus, dagster_ui: str) -> BatchView:
        """``status`` with links to its event stream, its partition and latest run in the UI."""
        return cls(
            **status.model_dump(),
            events_url=events_link(status.batch_id),
            dagster_url=dagster_link(dagster_ui, status.batch_id),
            run_url=f"{dagster_ui}/runs/{status.runs[-1]}" if status.runs else None,
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
    """An entity of the graph store with its types, aliases and number of mentions."""

    id: str
    name: str
    types: list[str]
    aliases: list[str]
    mention_count: int = 0


class EntityPage(BaseModel):
    """Entities matching a query."""

    items: list[EntitySummary]
    offset: int
    limit: int


class EntityRef(BaseModel):
    """The entity at the other end of a relation: enough to show it and to link to it."""

    id: str
    name: str
    types: list[str]


class MentionView(BaseModel):
    """Where an entity is mentioned: a span of a document's text."""

    id: str
    document_id: str
    document: str
    start: int
    end: int
    text: str
    label: str


class EvidenceView(BaseModel):
    """A span of a document's text that states a relation."""

    document_id: str
    document: str
    start: int
    end: int
    text: str


class RelationView(BaseModel):
    """A relation in or out of an entity, with both ends named and its evidence."""

    id: str
    subject_id: str
    predicate: str
    object_id: str | None
    object_literal: str | None
    subject: EntityRef
    object: EntityRef | None
    evidence: list[EvidenceView]


class CanonicalView(BaseModel):
    """The cross-batch canonical entity an entity was merged into."""

    id: str
    name: str
    types: list[str]
    aliases: list[str]
    members: int
    mention_count: int


class EntityDetail(EntitySummary):
    """An entity with its canonical entity, its mentions and its relations in and out."""

    canonical: CanonicalView | None
    mentions: list[MentionView]
    relations_out: list[RelationView]
    relations_in: list[RelationView]


class TypeCount(BaseModel):
    """An ontology class and how many entities have it."""

    name: str
    entities: int


class DocumentMention(BaseModel):
    """A mention inside a document, with the entity it belongs to."""

    id: str
    start: int
    end: int
    text: str
    label: str
    entity_id: str | None


class DocumentView(BaseModel):
    """A stored document: its text and every mention in it, by offset."""

    id: str
    name: str
    sha256: str
    text: str
    mentions: list[DocumentMention]


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    checks: dict[str, str] = {}
