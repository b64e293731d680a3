"""Ledger rows say what they were (chat or embeddings) and carry flags (overruns).

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


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("flags")
        batch.drop_column("operation")
