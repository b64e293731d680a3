"""Traces: one row per request (what search filters on), its spans (attributes as JSON),
the redacted prompt and completion text a feature's policy lets us keep (deleted by the
retention job when ``expires_at`` passes), and key scopes (``traces:read_text``).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traces",
        # One row per request, keyed by its root span: a client may send one trace id
        # with several calls (x-bounded-trace-id), and each is its own request here.
        sa.Column("span_id", sa.String(16), primary_key=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("feature", sa.Text, nullable=True),
        sa.Column("team", sa.Text, nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("deployment", sa.Text, nullable=True),
        sa.Column("arm", sa.Text, nullable=True),
        sa.Column("status", sa.String(8), nullable=False),  # ok | error
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("error_class", sa.Text, nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_e10", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("spans", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_traces_ts", "traces", ["ts"])
    op.create_index("ix_traces_trace", "traces", ["trace_id"])
    op.create_index("ix_traces_feature_ts", "traces", ["feature", "ts"])
    op.create_index("ix_traces_status_ts", "traces", ["status", "ts"])
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(16), nullable=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("trace_id", "span_id"),
    )
    op.create_index("ix_spans_start", "spans", ["start_ns"])
    op.create_table(
        "trace_texts",
        sa.Column("span_id", sa.String(16), primary_key=True),  # the request's root span
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("feature", sa.Text, nullable=True),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("completion", sa.Text, nullable=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_trace_texts_expires", "trace_texts", ["expires_at"])
    op.create_index("ix_trace_texts_trace", "trace_texts", ["trace_id"])
    op.add_column("api_keys", sa.Column("scopes", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
    op.drop_table("trace_texts")
    op.drop_table("spans")
    op.drop_table("traces")
