"""Keys, ledger, outcomes and budget alerts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.Text, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("teams", sa.Text, nullable=False),
        sa.Column("limits", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_table(
        "ledger",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.Text, nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("team", sa.Text, nullable=True),
        sa.Column("feature", sa.Text, nullable=True),
        sa.Column("arm", sa.Text, nullable=False, server_default="stable"),
        sa.Column("provider", sa.Text, nullable=True),
        sa.Column("deployment", sa.Text, nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0"),
        # Exact cost in units of 1e-10 USD: integers sum exactly in SQLite and PostgreSQL.
        sa.Column("cost_e10", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("usage_source", sa.Text, nullable=False, server_default="provider"),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_class", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("stream", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_ledger_ts", "ledger", ["ts"])
    op.create_index("ix_ledger_trace", "ledger", ["trace_id"])
    op.create_index("ix_ledger_session", "ledger", ["session_id"])
    op.create_index("ix_ledger_feature_ts", "ledger", ["feature", "ts"])
    op.create_index("ix_ledger_team_ts", "ledger", ["team", "ts"])
    op.create_index("ix_ledger_key_ts", "ledger", ["key_id", "ts"])
    op.create_table(
        "outcomes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("trace_id", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_outcomes_trace", "outcomes", ["trace_id"])
    op.create_table(
        "budget_alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("amount_usd", sa.Text, nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("budget_alerts")
    op.drop_table("outcomes")
    op.drop_table("ledger")
    op.drop_table("api_keys")
