"""Prompt versions and labels, the audit log, and the prompt version on ledger rows.

A prompt version is immutable: ``prompt_versions`` rows are only inserted. Labels
(``production``, ``candidate``, ``latest``, any other) point at a version and move.
``prompt_generation`` is one counter bumped in the same transaction as every push or
label move, so a replica checks one row to know whether its cached prompts are stale.
The audit log is append-only in the database itself: triggers refuse UPDATE and DELETE
on SQLite and PostgreSQL alike, so no code path (ours or a hand-typed query) rewrites it.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("feature", sa.String(256), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("template", sa.Text, nullable=False),  # JSON: messages, params, vars
        sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the template
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("source", sa.Text, nullable=True),  # the file it was pushed from
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("feature", sa.String(256), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
    )
    op.create_table(
        "prompt_generation",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO prompt_generation (id, value) VALUES (1, 0)")
    op.create_table(
        "audit_log",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=True),  # JSON
    )
    op.create_index("ix_audit_ts", "audit_log", ["ts"])
    op.create_index("ix_audit_action_ts", "audit_log", ["action", "ts"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bounded_audit_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION bounded_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION bounded_audit_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )
    op.add_column("ledger", sa.Column("prompt_version", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("prompt_version")
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS bounded_audit_append_only()")
    op.drop_table("prompt_generation")
    op.drop_table("prompt_labels")
    op.drop_table("prompt_versions")
