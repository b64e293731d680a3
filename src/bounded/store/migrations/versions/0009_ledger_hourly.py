"""The ledger's hourly rollup, what the dashboard reads for complete hours.

``ledger_hourly``: one row per (hour, feature, team, deployment, operation), ``hour`` being
``floor(ts / 3600)``, with the sums the pages show and the hour's latencies packed as
little-endian float64 in ascending order (so a p95 over any hours stays exact, and is found
without sorting them all again). ``ledger_hourly_outcomes``: per (hour, dimension, group),
the traces whose first call in that group fell in the hour, by their latest outcome.
``ledger_hourly_state``: one row, what the two cover (watermarks on ledger and outcome ids,
the first hour not rolled, ids skipped below the watermark).
Filled by the gateway's background job (:mod:`bounded.economics.rollup`); empty after this
upgrade, so the first run rolls up the whole ledger (in batches; the pages read raw rows
meanwhile).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_hourly",
        sa.Column("hour", sa.BigInteger, nullable=False),
        sa.Column("feature", sa.Text, nullable=True),
        sa.Column("team", sa.Text, nullable=True),
        sa.Column("deployment", sa.Text, nullable=True),
        sa.Column("operation", sa.Text, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("validated", sa.BigInteger, nullable=False),
        sa.Column("vfailed", sa.BigInteger, nullable=False),
        sa.Column("refusals", sa.BigInteger, nullable=False),
        sa.Column("answered", sa.BigInteger, nullable=False),
        sa.Column("answer_tokens", sa.BigInteger, nullable=False),  # output tokens, status < 400
        sa.Column("grounded", sa.BigInteger, nullable=False),
        sa.Column("gsum", sa.Float, nullable=False),  # sum of groundedness scores
        sa.Column("cost_e10", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("latencies", sa.LargeBinary, nullable=False),
    )
    # Rows of an hour are replaced together (deleted, then inserted): no unique key needed,
    # and the group columns may be NULL, which a unique index would not treat as equal.
    op.create_index("ix_ledger_hourly_hour", "ledger_hourly", ["hour"])
    op.create_table(
        "ledger_hourly_outcomes",
        sa.Column("hour", sa.BigInteger, nullable=False),
        sa.Column("dim", sa.String(16), nullable=False),  # feature | team | deployment
        sa.Column("grp", sa.Text, nullable=True),
        sa.Column("successes", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ledger_hourly_outcomes_hour", "ledger_hourly_outcomes", ["dim", "hour"])
    op.create_table(
        "ledger_hourly_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),  # compare-and-set by each run
        sa.Column("ledger_upto", sa.BigInteger, nullable=False),
        sa.Column("outcomes_upto", sa.BigInteger, nullable=False),
        sa.Column("rolled_until", sa.BigInteger, nullable=False),  # hours below are rolled
        sa.Column("gaps", sa.Text, nullable=False),  # JSON: ids skipped below the watermarks
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.execute(
        "INSERT INTO ledger_hourly_state (id, version, ledger_upto, outcomes_upto,"
        " rolled_until, gaps, updated_at) VALUES (1, 0, 0, 0, 0, '{}', 0)"
    )


def downgrade() -> None:
    op.drop_table("ledger_hourly_state")
    op.drop_index("ix_ledger_hourly_outcomes_hour", table_name="ledger_hourly_outcomes")
    op.drop_table("ledger_hourly_outcomes")
    op.drop_index("ix_ledger_hourly_hour", table_name="ledger_hourly")
    op.drop_table("ledger_hourly")
