"""A request's spans are one value in its ``traces`` row (migration 0008): a trace of many
spans reads back exactly, nothing goes to the old ``spans`` table, and a trace written
before the upgrade (its spans as rows of their own) still reads back, on the API's reader,
the dashboard's waterfall and the retention job."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from bounded.dashboard.records import trace_detail
from bounded.store.db import Database
from bounded.store.migrate import alembic_config, sqlalchemy_url
from bounded.telemetry.config import TelemetryConfig
from bounded.telemetry.retention import sweep
from bounded.telemetry.spans import Span, new_span_id
from bounded.telemetry.store import TraceRecord, TraceRepository, TraceWriter

SPANS = 240


def _many_spans(trace_id: str, rnd: random.Random) -> TraceRecord:
    """A root and SPANS - 1 spans under random earlier parents, with every kind of
    attribute value a span holds (str, int, float, bool, tuple, nested names)."""
    t0 = time.time_ns()
    root = Span(new_span_id(), None, "chat big", t0, t0 + 9_000_000_000, kind="server")
    root.attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12345,
        "bounded.cost_usd": 0.000123456789, "bounded.stream": True,
        "gen_ai.response.finish_reasons": ("stop", "length"), "bounded.team": "t",
    }  # fmt: skip
    spans = [root]
    for i in range(1, SPANS):
        parent = rnd.choice(spans)
        start = parent.start_ns + rnd.randrange(0, 1_000_000)
        span = Span(
            new_span_id(), parent.span_id, f"stage{i} ünï", start,
            start + rnd.randrange(0, 5_000_000), status=rnd.choice(("ok", "error")),
            kind=rnd.choice(("internal", "client")),
        )  # fmt: skip
        if i % 3:
            span.attributes = {"bounded.stage": f"stage{i}", "n": i, "ratio": i / 7}
        if span.status == "error":
            span.attributes["error.type"] = "upstream_timeout"
        spans.append(span)
    return TraceRecord(
        trace_id=trace_id, root=root, spans=spans, feature="big", team="t", model="big",
        deployment="m", arm="stable", http_status=200, error_class=None, input_tokens=12345,
        output_tokens=6, cost_e10=1234567,
    )  # fmt: skip


def _expected(spans: list[Span]) -> list[dict[str, Any]]:
    """What the API showed for these spans before 0008 (computed here, not by the code
    under test): attributes as JSON gives them back, a stage's own time added."""
    children: dict[str | None, int] = {}
    for s in spans:
        children[s.parent_id] = children.get(s.parent_id, 0) + s.end_ns - s.start_ns
    out = []
    for s in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        attrs = orjson.loads(orjson.dumps(s.attributes))
        if "bounded.stage" in attrs:
            own = s.end_ns - s.start_ns - children.get(s.span_id, 0)
            attrs["bounded.self_ms"] = round(max(0, own) / 1e6, 3)
        out.append(
            {
                "span_id": s.span_id, "parent_span_id": s.parent_id, "name": s.name,
                "kind": s.kind, "start_time_unix_nano": s.start_ns,
                "end_time_unix_nano": s.end_ns,
                "duration_ms": round((s.end_ns - s.start_ns) / 1e6, 3), "status": s.status,
                "attributes": attrs,
            }
        )  # fmt: skip
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_many_spans_round_trip_in_one_row(
    backend: str, request: pytest.FixtureRequest, store_url: str
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else store_url
    rnd = random.Random(12)
    records = [_many_spans(f"big-{i}", rnd) for i in range(3)]
    expected = {r.trace_id: _expected(r.spans) for r in records}
    db = Database.open(url)
    writer = TraceWriter(url)
    try:
        for record in records:
            writer.put(record)
        assert writer.flush()
        repo = TraceRepository(db)
        for trace_id, spans in expected.items():
            assert repo.spans(trace_id) == spans
            (summary,) = repo.requests(trace_id)
            assert summary["spans"] == SPANS
        # One row per request, none per span.
        assert db.execute("SELECT COUNT(*) AS n FROM traces")[0]["n"] == 3
        assert db.execute("SELECT COUNT(*) AS n FROM spans")[0]["n"] == 0
        # The writer keeps no derived attribute on the spans it was given (the exporter
        # reads the same objects).
        assert all("bounded.self_ms" not in s.attributes for r in records for s in r.spans)
    finally:
        writer.close()
        for table in ("traces", "spans", "trace_texts"):
            db.execute(f"DELETE FROM {table}")
        db.close()


# What the trace writer wrote before migration 0008, as it wrote it.
_OLD_TRACE = (
    "INSERT INTO traces (span_id, trace_id, ts, duration_ms, name, feature, team, model,"
    " deployment, arm, status, http_status, error_class, input_tokens, output_tokens,"
    " cost_e10, spans) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OLD_SPAN = (
    "INSERT INTO spans (trace_id, span_id, parent_id, name, start_ns, end_ns, status,"
    " attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _write_old(db: Database, record: TraceRecord, own: dict[str, float]) -> None:
    root = record.root
    db.execute(
        _OLD_TRACE,
        (
            root.span_id, record.trace_id, root.start_ns / 1e9,
            (root.end_ns - root.start_ns) / 1e6, root.name, record.feature, record.team,
            record.model, record.deployment, record.arm, root.status, record.http_status,
            record.error_class, record.input_tokens, record.output_tokens, record.cost_e10,
            len(record.spans),
        ),
    )  # fmt: skip
    for s in record.spans:
        attrs = dict(s.attributes)
        if "bounded.stage" in attrs:
            attrs["bounded.self_ms"] = own[s.span_id]
        attrs["bounded.span.kind"] = s.kind
        db.execute(
            _OLD_SPAN,
            (record.trace_id, s.span_id, s.parent_id, s.name, s.start_ns, s.end_ns, s.status,
             orjson.dumps(attrs).decode()),
        )  # fmt: skip


def _migrate_to(url: str, revision: str) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def test_trace_written_before_the_upgrade_still_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old-traces.db'}"
    _migrate_to(url, "0007")
    rnd = random.Random(7)
    old = _many_spans("same-id", rnd)
    expected_old = _expected(old.spans)
    own = {s["span_id"]: s["attributes"].get("bounded.self_ms", 0.0) for s in expected_old}
    db = Database.open(url, migrate=False)
    _write_old(db, old, own)
    db.close()

    db = Database.open(url)  # upgraded to head here: 0008 adds traces.spans_json
    assert db.execute("SELECT version_num FROM alembic_version")[0]["version_num"] >= "0008"
    # The client sends the same trace id again after the upgrade: one request of each kind.
    new = _many_spans("same-id", rnd)
    writer = TraceWriter(url)
    try:
        writer.put(new)
        assert writer.flush()
    finally:
        writer.close()
    repo = TraceRepository(db)
    both = sorted(
        expected_old + _expected(new.spans),
        key=lambda s: (s["start_time_unix_nano"], s["span_id"]),
    )
    assert repo.spans("same-id") == both
    assert [r["spans"] for r in repo.requests("same-id")] == [SPANS, SPANS]

    # The dashboard draws the old spans too, each under its parent.
    view = trace_detail(db, db, "same-id")
    assert view is not None and len(view["waterfall"]) == 2 * SPANS
    roots = [row for row in view["waterfall"] if row["depth"] == 0]
    assert sorted(r["name"] for r in roots) == ["chat big", "chat big"]

    # Retention: both go after their period, old span rows with their request's row.
    removed = sweep(db, TelemetryConfig(trace_retention_days=1), now=time.time() + 3 * 86400)
    assert removed == {"texts": 0, "spans": 2 * SPANS, "traces": 2}
    assert repo.spans("same-id") == []
    assert db.execute("SELECT COUNT(*) AS n FROM spans")[0]["n"] == 0
    db.close()
