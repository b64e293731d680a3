"""Ledger rows say what they were (chat or embeddings), carry flags (overruns, repairs),
the validation verdict and groundedness of their answer, and a cascade's baseline cost.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger", sa.Column("operation", sa.Text, nullable=False, server_default="chat"))
    op.add_column("ledger", sa.Column("flags", sa.Text, nullable=True))
    op.add_column("ledger", sa.Column("validation", sa.Text, nullable=True))
    op.add_column("ledger", sa.Column("groundedness", sa.Float, nullable=True))
    op.add_column("ledger", sa.Column("baseline_cost_e10", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        for column in ("baseline_cost_e10", "groundedness", "validation", "flags"):
            batch.drop_column(column)
        batch.drop_column("operation")
