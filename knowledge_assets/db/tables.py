"""SQLAlchemy Core tables of the ``knowledge`` schema, mirroring the newest migration."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from knowledge_assets.db.migrate import SCHEMA

metadata = sa.MetaData(schema=SCHEMA)


def _text(name: str, *, key: bool = False, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text, primary_key=key, nullable=nullable)


documents = sa.Table(
    "documents",
    metadata,
    _text("id", key=True),
    _text("name"),
    _text("sha256"),
    _text("text"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)
batch_documents = sa.Table(
    "batch_documents", metadata, _text("batch_id", key=True), _text("document_id", key=True)
)
entities = sa.Table(
    "entities",
    metadata,
    _text("id", key=True),
    _text("canonical_name"),
    _text("first_batch_id"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)
entity_types = sa.Table(
    "entity_types", metadata, _text("entity_id", key=True), _text("type", key=True)
)
entity_aliases = sa.Table(
    "entity_aliases", metadata, _text("entity_id", key=True), _text("alias", key=True)
)
mentions = sa.Table(
    "mentions",
    metadata,
    _text("id", key=True),
    _text("document_id"),
    _text("chunk_id"),
    sa.Column("start", sa.Integer, nullable=False),
    sa.Column("end", sa.Integer, nullable=False),
    _text("text"),
    _text("label"),
    _text("entity_id"),
    _text("batch_id"),
    _text("extractor"),
    _text("extractor_version"),
)
relations = sa.Table(
    "relations",
    metadata,
    _text("id", key=True),
    _text("subject_id"),
    _text("predicate"),
    _text("object_id", nullable=True),
    _text("object_literal", nullable=True),
    _text("first_batch_id"),
)
relation_evidence = sa.Table(
    "relation_evidence",
    metadata,
    _text("relation_id", key=True),
    _text("document_id", key=True),
    sa.Column("start", sa.Integer, primary_key=True),
    sa.Column("end", sa.Integer, primary_key=True),
    _text("chunk_id"),
    _text("batch_id"),
    _text("extractor"),
    _text("extractor_version"),
)
quarantine = sa.Table(
    "quarantine",
    metadata,
    _text("id", key=True),
    _text("batch_id"),
    _text("kind"),
    _text("subject"),
    _text("reason"),
    sa.Column("detail", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)
extraction_cache = sa.Table(
    "extraction_cache",
    metadata,
    _text("key", key=True),
    _text("extractor"),
    _text("extractor_version"),
    _text("config_hash"),
    _text("chunk_sha256"),
    sa.Column("result", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

# A chunk's key is marked here before it is sent to the extractor and cleared when its result is
# cached: a count that survives crashes tells a poison chunk from one that was merely in flight.
extraction_attempts = sa.Table(
    "extraction_attempts",
    metadata,
    _text("key", key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    _text("chunk_sha256", nullable=True),
)

document_versions = sa.Table(
    "document_versions",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    _text("name"),
    _text("batch_id"),
    _text("document_id", nullable=True),
    _text("sha256", nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)
"""Every submission of a document name, in the order submissions were made (``seq``).

A row with ``document_id`` NULL is a deletion. A name's live version is its row with the
highest ``seq``; (``document_id``, ``batch_id``) names a version in every fact table."""

chunks = sa.Table(
    "chunks",
    metadata,
    _text("id", key=True),
    _text("document_id"),
    sa.Column("index", sa.Integer, nullable=False),
    sa.Column("start", sa.Integer, nullable=False),
    sa.Column("end", sa.Integer, nullable=False),
    _text("sha256"),
)
"""Where each ingested document version was cut: to rebuild a batch without extracting again."""

batch_contributions = sa.Table(
    "batch_contributions",
    metadata,
    _text("batch_id", key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("extractor", JSONB, nullable=False),
    sa.Column("cache_extractor", JSONB, nullable=False),
)
"""Batches whose facts are in the graph: their submission order and who extracted them."""

entity_support = sa.Table(
    "entity_support",
    metadata,
    _text("entity_id", key=True),
    _text("batch_id", key=True),
    _text("canonical_name"),
    sa.Column("types", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("documents", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("mentions", sa.Integer, nullable=False),
)
"""An entity as one batch resolved it; ``entities`` and ``entity_types`` derive from these."""

alias_support = sa.Table(
    "alias_support",
    metadata,
    _text("entity_id", key=True),
    _text("alias", key=True),
    _text("document_id", key=True),
    _text("batch_id"),
)
"""An alias as written in one document version; ``entity_aliases`` derives from these."""

GRAPH_TABLES = (
    documents,
    batch_documents,
    entities,
    entity_types,
    entity_aliases,
    mentions,
    relations,
    relation_evidence,
    quarantine,
    batch_contributions,
    entity_support,
    alias_support,
)
"""The graph: what exports and queries read, and each batch's support for it."""

canonical_entities = sa.Table(
    "canonical_entities",
    metadata,
    _text("id", key=True),
    _text("name"),
    _text("root_type"),
    sa.Column("types", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("aliases", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("mention_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("members", sa.Integer, nullable=False, server_default="0"),
)
canonical_members = sa.Table(
    "canonical_members",
    metadata,
    _text("entity_id", key=True),
    _text("canonical_id"),
    _text("batch_id"),
    _text("rule"),
    sa.Column("score", sa.Float, nullable=False, server_default="1.0"),
    sa.Column("evidence", JSONB, nullable=False, server_default="{}"),
    sa.Column("mentions", sa.Integer, nullable=False, server_default="0"),
    sa.Column("documents", ARRAY(sa.Text), nullable=False, server_default="{}"),
)
canonical_keys = sa.Table(
    "canonical_keys", metadata, _text("key", key=True), _text("canonical_id", key=True)
)
registry_batches = sa.Table(
    "registry_batches",
    metadata,
    _text("batch_id", key=True),
    sa.Column("entities", sa.Integer, nullable=False),
    sa.Column("merged_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("position", sa.BigInteger, sa.Identity()),
    sa.Column("stale", sa.Boolean, nullable=False, server_default=sa.false()),
)
"""Batches merged into the registry, in merge order (``position``); ``stale`` ones changed since."""

canonical_splits = sa.Table(
    "canonical_splits",
    metadata,
    _text("entity_id", key=True),
    _text("other_id", key=True),
    _text("reason"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)
"""Cannot-link pairs left by a split: the two entities never share a canonical again."""

REGISTRY_TABLES = (canonical_entities, canonical_members, canonical_keys)

# One lease per run a worker executes (liveness, not workflow state): see instance/leases.py.
worker_leases = sa.Table(
    "worker_leases",
    metadata,
    _text("run_id", key=True),
    _text("task_id"),
    _text("node"),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("ttl_s", sa.Float, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("renewed_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)
