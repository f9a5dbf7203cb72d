"""Cross-batch canonical-entity registry."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "knowledge"


def upgrade() -> None:
    op.create_table(
        "canonical_entities",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("root_type", sa.Text, nullable=False),
        schema=S,
    )
    op.create_table(
        "canonical_members",
        sa.Column("entity_id", sa.Text, primary_key=True),
        sa.Column("canonical_id", sa.Text, nullable=False),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        schema=S,
    )
    op.create_index("canonical_members_canonical", "canonical_members", ["canonical_id"], schema=S)
    op.create_table(
        "canonical_keys",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("canonical_id", sa.Text, primary_key=True),
        schema=S,
    )
    op.create_table(
        "registry_batches",
        sa.Column("batch_id", sa.Text, primary_key=True),
        sa.Column("entities", sa.Integer, nullable=False),
        sa.Column(
            "merged_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=S,
    )


def downgrade() -> None:
    for table in ("registry_batches", "canonical_keys", "canonical_members", "canonical_entities"):
        op.drop_table(table, schema=S)
