"""Worker leases: whether the worker executing a run is still alive.

Liveness, not workflow state: a run's status stays Dagster's own. The task executing a run writes
its lease (with the node that took the run) before the run starts and renews it; run monitoring
fails a run whose lease went silent (``instance/leases.py``), and the graph store's fence locks
it while committing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

S = "knowledge"


def _moment(name: str, *, nullable: bool = True) -> sa.Column:
    default = None if nullable else sa.func.now()
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "worker_leases",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("task_id", sa.Text, nullable=False),
        sa.Column("node", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("ttl_s", sa.Float, nullable=False),
        _moment("started_at", nullable=False),
        _moment("renewed_at", nullable=False),
        _moment("finished_at"),
        _moment("revoked_at"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("worker_leases", schema=S)
