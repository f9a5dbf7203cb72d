"""A living graph: document versions, each batch's contribution, chunks, and registry order."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

S = "knowledge"


def _texts(name: str) -> sa.Column:
    return sa.Column(name, ARRAY(sa.Text), nullable=False, server_default="{}")


def upgrade() -> None:
    # The total order of submissions: one row per document name per submission (or deletion).
    op.create_table(
        "document_versions",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("document_id", sa.Text),
        sa.Column("sha256", sa.Text),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("batch_id", "name", name="document_versions_batch_name"),
        schema=S,
    )
    op.create_index("document_versions_name", "document_versions", ["name", "seq"], schema=S)
    op.create_table(
        "chunks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("document_id", sa.Text, nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        schema=S,
    )
    op.create_index("chunks_document", "chunks", ["document_id"], schema=S)
    op.create_index("chunks_sha256", "chunks", ["sha256"], schema=S)
    op.create_table(
        "batch_contributions",
        sa.Column("batch_id", sa.Text, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("extractor", JSONB, nullable=False),
        sa.Column("cache_extractor", JSONB, nullable=False),
        schema=S,
    )
    op.create_table(
        "entity_support",
        sa.Column("entity_id", sa.Text, primary_key=True),
        sa.Column("batch_id", sa.Text, primary_key=True),
        sa.Column("canonical_name", sa.Text, nullable=False),
        _texts("types"),
        _texts("documents"),
        sa.Column("mentions", sa.Integer, nullable=False),
        schema=S,
    )
    op.create_index("entity_support_batch", "entity_support", ["batch_id"], schema=S)
    op.create_table(
        "alias_support",
        sa.Column("entity_id", sa.Text, primary_key=True),
        sa.Column("alias", sa.Text, primary_key=True),
        sa.Column("document_id", sa.Text, primary_key=True),
        sa.Column("batch_id", sa.Text, nullable=False),
        schema=S,
    )
    op.create_index("alias_support_batch", "alias_support", ["batch_id"], schema=S)
    op.create_index("relation_evidence_batch", "relation_evidence", ["batch_id"], schema=S)
    op.create_index("batch_documents_document", "batch_documents", ["document_id"], schema=S)
    op.add_column(
        "registry_batches",
        sa.Column("position", sa.BigInteger, sa.Identity(), nullable=False),
        schema=S,
    )
    op.add_column(
        "registry_batches",
        sa.Column("stale", sa.Boolean, nullable=False, server_default=sa.false()),
        schema=S,
    )
    op.add_column("canonical_members", _texts("documents"), schema=S)
    op.add_column("extraction_attempts", sa.Column("chunk_sha256", sa.Text), schema=S)
    op.create_index("extraction_cache_chunk", "extraction_cache", ["chunk_sha256"], schema=S)
    op.create_index("extraction_attempts_chunk", "extraction_attempts", ["chunk_sha256"], schema=S)
    for statement in _FROM_EARLIER_RELEASES:
        op.execute(statement)


# Graphs ingested before versions existed: every stored document becomes a version of its batch
# (oldest stored first), and each batch's entities and aliases their support. Chunk boundaries
# were not stored then: such a batch is re-chunked with the current settings if it is rebuilt.
_FROM_EARLIER_RELEASES = [
    f"""
    INSERT INTO {S}.document_versions (name, batch_id, document_id, sha256)
    SELECT d.name, bd.batch_id, d.id, d.sha256
    FROM {S}.batch_documents bd JOIN {S}.documents d ON d.id = bd.document_id
    ORDER BY d.created_at, bd.batch_id, d.name
    ON CONFLICT DO NOTHING
    """,
    f"""
    INSERT INTO {S}.batch_contributions (batch_id, position, extractor, cache_extractor)
    SELECT v.batch_id, min(v.seq),
        jsonb_build_object('name', min(m.extractor), 'version', min(m.extractor_version),
                           'config_hash', ''),
        jsonb_build_object('name', min(m.extractor), 'version', min(m.extractor_version),
                           'config_hash', '')
    FROM {S}.document_versions v LEFT JOIN {S}.mentions m ON m.batch_id = v.batch_id
    GROUP BY v.batch_id
    """,
    f"""
    INSERT INTO {S}.entity_support (entity_id, batch_id, canonical_name, types, documents, mentions)
    SELECT m.entity_id, m.batch_id, e.canonical_name,
        coalesce((SELECT array_agg(t.type ORDER BY t.type) FROM {S}.entity_types t
                  WHERE t.entity_id = m.entity_id), '{{}}'),
        array_agg(DISTINCT m.document_id ORDER BY m.document_id), count(*)
    FROM {S}.mentions m JOIN {S}.entities e ON e.id = m.entity_id
    GROUP BY m.entity_id, m.batch_id, e.canonical_name
    """,
    f"""
    INSERT INTO {S}.alias_support (entity_id, alias, document_id, batch_id)
    SELECT DISTINCT ON (m.entity_id, btrim(m.text), m.document_id)
        m.entity_id, btrim(m.text), m.document_id, m.batch_id
    FROM {S}.mentions m
    ORDER BY m.entity_id, btrim(m.text), m.document_id, m.batch_id
    """,
]


def downgrade() -> None:
    op.drop_index("extraction_attempts_chunk", "extraction_attempts", schema=S)
    op.drop_index("extraction_cache_chunk", "extraction_cache", schema=S)
    op.drop_column("extraction_attempts", "chunk_sha256", schema=S)
    op.drop_column("canonical_members", "documents", schema=S)
    op.drop_column("registry_batches", "stale", schema=S)
    op.drop_column("registry_batches", "position", schema=S)
    op.drop_index("batch_documents_document", "batch_documents", schema=S)
    op.drop_index("relation_evidence_batch", "relation_evidence", schema=S)
    for table in (
        "alias_support",
        "entity_support",
        "batch_contributions",
        "chunks",
        "document_versions",
    ):
        op.drop_table(table, schema=S)
