"""The domain model: every stage reads and writes these pydantic models (JSON, never pickles)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def stable_id(prefix: str, *parts: object) -> str:
    """A short deterministic id: same parts, same id, in every process and on every run."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return f"{prefix}_{digest[:20]}"


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Frozen(BaseModel):
    """Base for value objects: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Span(Frozen):
    """Half-open character range ``[start, end)`` into a document's text."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.end < self.start:
            raise ValueError(f"span end {self.end} is before its start {self.start}")
        return self


class DocumentInput(Frozen):
    """A document as submitted: a name and its raw bytes, not yet decoded or checked."""

    name: str
    data: bytes


class Document(Frozen):
    """A decoded, accepted document. ``id`` is derived from name and content."""

    id: str
    name: str
    text: str
    sha256: str

    @classmethod
    def create(cls, name: str, text: str) -> Document:
        """Build a document with its deterministic id."""
        digest = sha256_text(text)
        return cls(id=stable_id("doc", name, digest), name=name, text=text, sha256=digest)


class DocumentRejection(Frozen):
    """A document refused before extraction, with the reason a user reads.

    ``sha256`` (of the raw bytes) or else ``size`` identify what was refused, so that the batch
    id covers refused documents too; a document refused unread (too large, unsupported) has only
    its size, one that could not be read at all has neither.
    """

    name: str
    code: Literal[
        "empty", "too_large", "binary", "encoding", "unsupported", "unreadable", "duplicate"
    ]
    reason: str
    sha256: str | None = None
    size: int | None = None

    @property
    def content_key(self) -> str:
        """What stands for the refused content in the batch id."""
        if self.sha256 is not None:
            return self.sha256
        return f"{self.size} bytes" if self.size is not None else "unread"


class Chunk(Frozen):
    """A sentence-aligned slice of one document; ``text == document.text[start:end]``."""

    id: str
    document_id: str
    index: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str
    sha256: str

    @classmethod
    def create(cls, document: Document, index: int, start: int, end: int) -> Chunk:
        """Cut a chunk out of a document by offsets."""
        text = document.text[start:end]
        return cls(
            id=stable_id("chk", document.id, start, end),
            document_id=document.id,
            index=index,
            start=start,
            end=end,
            text=text,
            sha256=sha256_text(text),
        )


class ExtractedMention(Frozen):
    """A mention as an extractor reports it, offsets relative to the chunk's text."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str
    label: str = Field(description="Ontology class local name, e.g. 'Person'.")
    score: float | None = None


class ExtractedRelation(Frozen):
    """A relation as an extractor reports it, between mentions of the same chunk.

    ``subject`` and ``object`` index ``ChunkExtraction.mentions``; a datatype property has
    ``object_literal`` instead of ``object``.
    """

    subject: int = Field(ge=0)
    predicate: str = Field(description="Ontology property local name, e.g. 'worksFor'.")
    object: int | None = Field(default=None, ge=0)
    object_literal: str | None = None
    start: int = Field(ge=0, description="Evidence span start, chunk-relative.")
    end: int = Field(ge=0)


class ChunkExtraction(Frozen):
    """What one extractor found in one chunk; this is what the per-chunk cache stores."""

    mentions: tuple[ExtractedMention, ...] = ()
    relations: tuple[ExtractedRelation, ...] = ()


class ExtractorInfo(Frozen):
    """Who extracted: part of every cache key and every fact's provenance."""

    name: str
    version: str
    config_hash: str = Field(description="Hash of ontology, prompt and options that shape output.")


class ChunkResult(Frozen):
    """One chunk's outcome: an extraction or the reason it failed (failures are never cached)."""

    chunk_id: str
    extraction: ChunkExtraction | None = None
    error: str | None = None
    from_cache: bool = False
    poisoned: bool = Field(
        default=False, description="Failed on every attempt: its document is quarantined."
    )


class Evidence(Frozen):
    """Where a fact comes from: document span, chunk, batch and extractor."""

    document_id: str
    chunk_id: str
    start: int
    end: int
    batch_id: str
    extractor: str
    extractor_version: str


class Mention(Frozen):
    """A mention placed in its document (absolute offsets) and linked to its entity."""

    id: str
    document_id: str
    chunk_id: str
    start: int
    end: int
    text: str
    label: str
    entity_id: str | None = None
    evidence: Evidence


class Entity(Frozen):
    """A resolved entity of one batch: canonical name, ontology types and every alias seen."""

    id: str
    canonical_name: str
    types: tuple[str, ...]
    aliases: tuple[str, ...]
    mention_ids: tuple[str, ...]


class Relation(Frozen):
    """A typed fact between entities (or an entity and a literal), with its evidence."""

    id: str
    subject_id: str
    predicate: str
    object_id: str | None = None
    object_literal: str | None = None
    evidence: tuple[Evidence, ...]


class Quarantined(Frozen):
    """Something held back with a reason a person can act on; never silently dropped."""

    id: str
    batch_id: str
    kind: Literal["document", "chunk", "mention", "relation"]
    subject: str = Field(description="Id or name of what was held back.")
    reason: str
    detail: dict[str, str] = Field(default_factory=dict)


class Batch(Frozen):
    """A set of documents processed together; its id is its idempotency key."""

    id: str
    document_ids: tuple[str, ...]
    ontology_hash: str
    extractor: ExtractorInfo

    @classmethod
    def create(
        cls,
        documents: Sequence[Document],
        rejections: Sequence[DocumentRejection],
        ontology_hash: str,
        extractor: ExtractorInfo,
    ) -> Batch:
        """Derive the batch id from everything submitted, the ontology and the extractor.

        Accepted documents count by name and text hash, refused ones by name, code and content
        (``DocumentRejection.content_key``): two submissions that differ in any document, even a
        refused one, never share a batch, and so never share its record.
        """
        parts = sorted(
            [f"accepted\x1e{d.name}\x1e{d.sha256}" for d in documents]
            + [f"refused\x1e{r.name}\x1e{r.code}\x1e{r.content_key}" for r in rejections]
        )
        key = "\x1f".join(
            [*parts, ontology_hash, extractor.name, extractor.version, extractor.config_hash]
        )
        return cls(
            id="b" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16],
            document_ids=tuple(d.id for d in documents),
            ontology_hash=ontology_hash,
            extractor=extractor,
        )


class ResolvedGraph(Frozen):
    """A batch's graph after in-batch resolution, before validation.

    ``quarantined`` carries what earlier stages held back (rejected documents, failed chunks,
    mentions whose span did not match), so validation can pass it on with its own findings.
    """

    batch_id: str
    entities: tuple[Entity, ...]
    mentions: tuple[Mention, ...]
    relations: tuple[Relation, ...]
    quarantined: tuple[Quarantined, ...] = ()


class ValidatedGraph(Frozen):
    """The graph that passed validation, plus everything quarantined and why."""

    batch_id: str
    entities: tuple[Entity, ...]
    mentions: tuple[Mention, ...]
    relations: tuple[Relation, ...]
    quarantined: tuple[Quarantined, ...]
    violations: int = 0
