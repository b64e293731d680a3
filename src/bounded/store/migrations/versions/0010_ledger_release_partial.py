"""The ledger's index on ``release_id`` covers only the rows that have one.

``release_id`` is NULL on almost every ledger row (only requests served while a release is
in shadow or canary carry it), yet 0007's ``ix_ledger_release`` took an entry for every row,
so every ledger INSERT on the request path paid for it. ``ix_ledger_release_partial`` is the
same index ``WHERE release_id IS NOT NULL`` (partial indexes: SQLite and PostgreSQL alike).
Every query that reads a release's rows filters ``release_id = ?``, which implies the
predicate, so both planners still use it (a test checks SQLite's plan and both definitions).

The partial index is built before the full one is dropped: on PostgreSQL building it scans
the ledger under a lock that still lets reads through, while ``DROP INDEX`` holds one that
stops them, now only until the commit that follows at once.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_HAS_RELEASE = "release_id IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_ledger_release_partial",
        "ledger",
        ["release_id"],
        sqlite_where=sa.text(_HAS_RELEASE),
        postgresql_where=sa.text(_HAS_RELEASE),
    )
    op.drop_index("ix_ledger_release", table_name="ledger")


def downgrade() -> None:
    op.create_index("ix_ledger_release", "ledger", ["release_id"])
    op.drop_index("ix_ledger_release_partial", table_name="ledger")
