"""Graph store and extraction cache."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "knowledge"


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        _created_at(),
        schema=S,
    )
    op.create_index("documents_name", "documents", ["name"], schema=S)
    op.create_table(
        "batch_documents",
        sa.Column("batch_id", sa.Text, primary_key=True),
        sa.Column("document_id", sa.Text, primary_key=True),
        schema=S,
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("canonical_name", sa.Text, nullable=False),
        sa.Column("first_batch_id", sa.Text, nullable=False),
        _created_at(),
        schema=S,
    )
    op.create_table(
        "entity_types",
        sa.Column("entity_id", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, primary_key=True),
        schema=S,
    )
    op.create_table(
        "entity_aliases",
        sa.Column("entity_id", sa.Text, primary_key=True),
        sa.Column("alias", sa.Text, primary_key=True),
        schema=S,
    )
    op.create_table(
        "mentions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("document_id", sa.Text, nullable=False),
        sa.Column("chunk_id", sa.Text, nullable=False),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("entity_id", sa.Text, nullable=False),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("extractor", sa.Text, nullable=False),
        sa.Column("extractor_version", sa.Text, nullable=False),
        schema=S,
    )
    op.create_index("mentions_entity", "mentions", ["entity_id"], schema=S)
    op.create_index("mentions_document", "mentions", ["document_id", "start"], schema=S)
    op.create_table(
        "relations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("subject_id", sa.Text, nullable=False),
        sa.Column("predicate", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text),
        sa.Column("object_literal", sa.Text),
        sa.Column("first_batch_id", sa.Text, nullable=False),
        schema=S,
    )
    op.create_index("relations_subject", "relations", ["subject_id"], schema=S)
    op.create_index("relations_object", "relations", ["object_id"], schema=S)
    op.create_table(
        "relation_evidence",
        sa.Column("relation_id", sa.Text, primary_key=True),
        sa.Column("document_id", sa.Text, primary_key=True),
        sa.Column("start", sa.Integer, primary_key=True),
        sa.Column("end", sa.Integer, primary_key=True),
        sa.Column("chunk_id", sa.Text, nullable=False),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("extractor", sa.Text, nullable=False),
        sa.Column("extractor_version", sa.Text, nullable=False),
        schema=S,
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", JSONB, nullable=False, server_default="{}"),
        _created_at(),
        schema=S,
    )
    op.create_index("quarantine_batch", "quarantine", ["batch_id"], schema=S)
    op.create_table(
        "extraction_cache",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("extractor", sa.Text, nullable=False),
        sa.Column("extractor_version", sa.Text, nullable=False),
        sa.Column("config_hash", sa.Text, nullable=False),
        sa.Column("chunk_sha256", sa.Text, nullable=False),
        sa.Column("result", JSONB, nullable=False),
        _created_at(),
        schema=S,
    )


def downgrade() -> None:
    for table in (
        "extraction_cache",
        "quarantine",
        "relation_evidence",
        "relations",
        "mentions",
        "entity_aliases",
        "entity_types",
        "entities",
        "batch_documents",
        "documents",
    ):
        op.drop_table(table, schema=S)
