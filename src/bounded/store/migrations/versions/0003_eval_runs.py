"""Eval runs and their cases: what ran, against which target and prompt version, the
verdict of the gate, and every case's output and assertion results (JSON).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("suite", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("feature", sa.Text, nullable=True),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("prompt_version", sa.Text, nullable=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("successes", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("pass_rate", sa.Float, nullable=False),
        sa.Column("cost_e10", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("baseline", sa.String(32), nullable=True),
        # The gate's reasons and the run's stats as JSON: read by `bounded eval show`.
        sa.Column("summary", sa.Text, nullable=False),
    )
    op.create_index("ix_eval_runs_feature_ts", "eval_runs", ["feature", "created_at"])
    op.create_table(
        "eval_cases",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("case_key", sa.Text, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        # One promptfoo-shaped result (vars, output, gradingResult) as JSON.
        sa.Column("result", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "idx"),
    )


def downgrade() -> None:
    op.drop_table("eval_cases")
    op.drop_index("ix_eval_runs_feature_ts", table_name="eval_runs")
    op.drop_table("eval_runs")
