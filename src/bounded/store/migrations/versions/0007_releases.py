"""Releases: one row per release of a feature (its candidate, mode, share and state), and
the release a ledger row belongs to.

A feature has at most one release in ``shadow`` or ``canary`` state at a time (a partial
unique index would say so on PostgreSQL and SQLite alike, but the start command checks it
in the same transaction that inserts, which is what both need). ``release_generation`` is
one counter bumped in the same transaction as every change to a release, so a replica
checks one row to know whether its cached releases are stale.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("feature", sa.String(256), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),  # shadow | canary
        sa.Column("share", sa.Float, nullable=False),  # 0..1 of traffic
        sa.Column("state", sa.String(16), nullable=False),  # running | promoted | rolled_back
        sa.Column("candidate_prompt", sa.Integer, nullable=True),
        sa.Column("stable_prompt", sa.Integer, nullable=True),
        sa.Column("candidate_route", sa.Text, nullable=True),  # JSON RouteConfig
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("started_by", sa.Text, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("ended_by", sa.Text, nullable=True),
        sa.Column("decision", sa.Text, nullable=True),  # JSON: the evidence of the ending
    )
    op.create_index("ix_releases_feature_state", "releases", ["feature", "state"])
    op.create_table(
        "release_generation",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO release_generation (id, value) VALUES (1, 0)")
    # Routes promoted by a release override the route in bounded.yaml for that feature
    # (the file is not rewritten: every replica reads the store).
    op.create_table(
        "feature_routes",
        sa.Column("feature", sa.String(256), primary_key=True),
        sa.Column("route", sa.Text, nullable=False),  # JSON RouteConfig
        sa.Column("release_id", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.add_column("ledger", sa.Column("release_id", sa.String(32), nullable=True))
    op.create_index("ix_ledger_release", "ledger", ["release_id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_release", "ledger")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("release_id")
    op.drop_table("feature_routes")
    op.drop_table("release_generation")
    op.drop_index("ix_releases_feature_state", "releases")
    op.drop_table("releases")
