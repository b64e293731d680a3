"""Governance: incidents, the architecture deltas that close them, and drift alerts.

An incident is opened against a feature (and optionally a trace); it can only be closed
once at least one delta is linked to it: a config/control change (an audit entry), a new
eval case or a new guard. Drift alerts record a health signal leaving its band.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("opened_at", sa.Float, nullable=False),
        sa.Column("feature", sa.Text, nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False, server_default="medium"),
        sa.Column("opened_by", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("closed_at", sa.Float, nullable=True),
        sa.Column("resolution", sa.Text, nullable=True),
        # JSON: the feature's guards and eval gate when the incident opened, so a guard
        # delta can be checked to be new rather than one that was already there.
        sa.Column("controls", sa.Text, nullable=True),
    )
    op.create_index("ix_incidents_feature", "incidents", ["feature", "opened_at"])
    op.create_index("ix_incidents_status", "incidents", ["status", "opened_at"])
    op.create_table(
        "incident_deltas",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("incident_id", sa.String(32), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        # audit | eval_case | guard
        sa.Column("kind", sa.String(16), nullable=False),
        # the audit entry id, the eval case key, or the guard kind at its config path
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_incident_deltas_incident", "incident_deltas", ["incident_id"])
    op.create_table(
        "drift_alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("feature", sa.Text, nullable=False),
        sa.Column("signal", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("low", sa.Float, nullable=True),
        sa.Column("high", sa.Float, nullable=True),
        # configured | baseline: where the band came from
        sa.Column("band_source", sa.String(16), nullable=False),
        sa.Column("window_start", sa.Float, nullable=False),
        sa.Column("window_end", sa.Float, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        # pending | sent | failed | none (no webhook configured)
        sa.Column("delivery", sa.String(16), nullable=False, server_default="none"),
        sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_drift_alerts_feature_ts", "drift_alerts", ["feature", "ts"])
    op.create_index("ix_drift_alerts_ts", "drift_alerts", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_drift_alerts_ts", table_name="drift_alerts")
    op.drop_index("ix_drift_alerts_feature_ts", table_name="drift_alerts")
    op.drop_table("drift_alerts")
    op.drop_index("ix_incident_deltas_incident", table_name="incident_deltas")
    op.drop_table("incident_deltas")
    op.drop_index("ix_incidents_status", table_name="incidents")
    op.drop_index("ix_incidents_feature", table_name="incidents")
    op.drop_table("incidents")
