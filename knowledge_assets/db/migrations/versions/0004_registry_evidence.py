"""Registry evidence: canonical types, aliases and mention counts, merge scores, splits."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

S = "knowledge"


def _texts(name: str) -> sa.Column:
    return sa.Column(name, ARRAY(sa.Text), nullable=False, server_default="{}")


def upgrade() -> None:
    op.add_column("canonical_entities", _texts("types"), schema=S)
    op.add_column("canonical_entities", _texts("aliases"), schema=S)
    op.add_column(
        "canonical_entities",
        sa.Column("mention_count", sa.Integer, nullable=False, server_default="0"),
        schema=S,
    )
    op.add_column(
        "canonical_entities",
        sa.Column("members", sa.Integer, nullable=False, server_default="0"),
        schema=S,
    )
    op.add_column(
        "canonical_members",
        sa.Column("score", sa.Float, nullable=False, server_default="1.0"),
        schema=S,
    )
    op.add_column(
        "canonical_members",
        sa.Column("evidence", JSONB, nullable=False, server_default="{}"),
        schema=S,
    )
    op.add_column(
        "canonical_members",
        sa.Column("mentions", sa.Integer, nullable=False, server_default="0"),
        schema=S,
    )
    # A merge reads one batch's mentions; without this it scans every batch's.
    op.create_index("mentions_batch", "mentions", ["batch_id"], schema=S)
    op.create_index("canonical_keys_canonical", "canonical_keys", ["canonical_id"], schema=S)
    op.create_table(
        "canonical_splits",
        sa.Column("entity_id", sa.Text, primary_key=True),
        sa.Column("other_id", sa.Text, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("canonical_splits", schema=S)
    op.drop_index("canonical_keys_canonical", "canonical_keys", schema=S)
    op.drop_index("mentions_batch", "mentions", schema=S)
    for column in ("mentions", "evidence", "score"):
        op.drop_column("canonical_members", column, schema=S)
    for column in ("members", "mention_count", "aliases", "types"):
        op.drop_column("canonical_entities", column, schema=S)
