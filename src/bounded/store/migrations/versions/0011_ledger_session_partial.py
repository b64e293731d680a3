"""The ledger's index on ``session_id`` covers only the rows that have one.

``session_id`` is NULL unless the client sent ``x-bounded-session``, yet 0001's
``ix_ledger_session`` took an entry for every row, so every ledger INSERT paid for it
(measured on SQLite with ``bench/ledger_write.py``: 1.4 µs a row in group commits of 26
rows; 5 µs off a single-row commit, as on an idle gateway). ``ix_ledger_session_partial``
is the same index ``WHERE session_id IS NOT NULL``, as 0010 did for ``release_id``.

The reads by session compare it with ``=``, which implies the predicate: an outcome's linked
calls (``trace_id = ? OR session_id = ?``) are still found through it on SQLite and
PostgreSQL (a test checks both plans). The outcomes joined to the ledger for cost per success
may use it or drive the join from the ledger's time range instead, as the planner finds
cheaper; a test checks that they are still counted.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_HAS_SESSION = "session_id IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_ledger_session_partial",
        "ledger",
        ["session_id"],
        sqlite_where=sa.text(_HAS_SESSION),
        postgresql_where=sa.text(_HAS_SESSION),
    )
    op.drop_index("ix_ledger_session", table_name="ledger")


def downgrade() -> None:
    op.create_index("ix_ledger_session", "ledger", ["session_id"])
    op.drop_index("ix_ledger_session_partial", table_name="ledger")
