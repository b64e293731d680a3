"""Traces: a request's spans as one compact JSON array in its ``traces`` row.

One row per request instead of one row per request plus one per span (10 or more, each with
its primary key and ``ix_spans_start`` to update): the trace writer's CPU was mostly those
inserts, and on a small machine that CPU (and the GIL hand-offs it causes) came off the
requests/s under load. ``traces.spans`` stays what it was, the number of spans; the spans
themselves go in ``traces.spans_json`` (the shape is documented where it is written,
:mod:`bounded.telemetry.store`).

The old ``spans`` table is kept, not copied over: rows written before this revision are
still read from it (a ``traces`` row whose ``spans_json`` is NULL), and the retention job
deletes them as they age out as before. Copying would make the upgrade take as long as
rewriting every span ever kept (minutes on a large PostgreSQL store, with the table locked);
keeping it costs one indexed lookup for old traces only. Nothing new is written there.

Downgrading drops the column: traces written after the upgrade keep their summary row but
lose their spans.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("traces", sa.Column("spans_json", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("spans_json")
