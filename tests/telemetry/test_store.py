"""The trace store on SQLite and PostgreSQL: batches written by the writer's thread, read
back by trace id and by search; text redacted before it is written."""

from __future__ import annotations

import time

import pytest

from bounded.store.db import Database
from bounded.telemetry.spans import Recorder
from bounded.telemetry.store import TraceRecord, TraceRepository, TraceWriter


def _record(trace_id: str, feature: str, status: int, text: str | None = None) -> TraceRecord:
    rec = Recorder(trace_id, "chat")
    span = rec.open("auth", {"bounded.stage": "auth"})
    rec.close(span)
    rec.finish()
    rec.seal()
    rec.root.name = f"chat {feature}"
    rec.root.status = "error" if status >= 400 else "ok"
    rec.root.attributes = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3}
    record = TraceRecord(
        trace_id=trace_id, root=rec.root, spans=rec.spans, feature=feature, team="t",
        model=feature, deployment="m", arm="stable", http_status=status,
        error_class="unavailable" if status >= 400 else None, input_tokens=3,
        output_tokens=4, cost_e10=50,
    )  # fmt: skip
    if text is not None:
        record.prompt, record.completion = text, text
        record.text_expires_at = time.time() + 60
    return record


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_written_in_batches_and_read_back(
    backend: str, request: pytest.FixtureRequest, store_url: str
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else store_url
    db = Database.open(url)
    writer = TraceWriter(url)
    try:
        for i in range(300):
            writer.put(_record(f"trace-{i}", "a" if i % 3 else "b", 502 if i % 10 == 0 else 200))
        writer.put(_record("texty", "a", 200, text="call +1 415 555 0199 or bob@example.com"))
        assert writer.flush()
        repo = TraceRepository(db)
        (one,) = repo.requests("trace-7")
        assert one["feature"] == "a" and one["status"] == "ok" and one["cost_usd"] == 5e-9
        spans = repo.spans("trace-7")
        assert [s["name"] for s in spans] == ["chat a", "auth"]
        assert spans[1]["parent_span_id"] == spans[0]["span_id"]
        assert spans[1]["attributes"]["bounded.stage"] == "auth"
        assert spans[1]["attributes"]["bounded.self_ms"] >= 0
        errors = repo.search(status="error", limit=500)
        assert len(errors) == 30 and all(r["http_status"] == 502 for r in errors)
        assert len(repo.search(feature="b", limit=500)) == 100
        assert repo.search(features=("nope",)) == []
        (text,) = repo.texts("texty")
        assert "bob@example.com" not in text["prompt"] and "555 0199" not in text["prompt"]
        assert "<EMAIL_1>" in text["completion"]
    finally:
        writer.close()
        for table in ("traces", "spans", "trace_texts"):
            db.execute(f"DELETE FROM {table}")
        db.close()


def test_a_busy_writer_redacts_in_a_child_process_and_stores_nothing_raw(store_url: str) -> None:
    """Many texts in one batch are redacted by the child process (off the gateway's GIL);
    what is stored is the same redaction as the thread's."""
    from bounded.telemetry.redactor import Redactor

    db = Database.open(store_url)
    writer = TraceWriter(store_url, interval_s=60)  # one batch: everything put before flush
    writer._redactor = redactor = Redactor(min_batch=8)
    try:
        for i in range(40):
            text = f"ticket {i}: reach me at carol{i}@example.com or +1 415 555 01{i:02d}"
            writer.put(_record(f"busy-{i}", "a", 200, text=text))
        assert writer.flush(30)
        assert redactor.in_child == 80  # every prompt and completion, in the child
        stored = [TraceRepository(db).texts(f"busy-{i}")[0] for i in range(40)]
        assert all(
            "@example.com" not in t["prompt"] and "555 01" not in t["prompt"] for t in stored
        )
        assert stored[7]["prompt"] == "ticket 7: reach me at <EMAIL_1> or <PHONE_1>"
        assert stored[7]["completion"] == stored[7]["prompt"]
    finally:
        writer.close()
        db.close()


def test_a_child_that_fails_falls_back_to_redacting_in_the_thread(store_url: str) -> None:
    from bounded.telemetry.redactor import Redactor

    redactor = Redactor(min_batch=1, timeout_s=0.000001)  # the child can never answer in time
    try:
        assert redactor.many(["mail dave@example.com"]) == ["mail <EMAIL_1>"]
        assert redactor.in_child == 0
    finally:
        redactor.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_nul_in_a_prompt_loses_no_trace(
    backend: str, request: pytest.FixtureRequest, store_url: str
) -> None:
    """PostgreSQL refuses NUL in text: one client's odd prompt must not fail the insert of
    the whole batch it shares with everyone else's traces."""
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else store_url
    db = Database.open(url)
    writer = TraceWriter(url, interval_s=60)  # one batch: everything put before flush
    try:
        writer.put(_record("before", "a", 200, text="plain"))
        writer.put(_record("nul", "a", 200, text="odd\x00prompt for bob@example.com"))
        writer.put(_record("after", "a", 200))
        assert writer.flush()
        repo = TraceRepository(db)
        assert [len(repo.requests(t)) for t in ("before", "nul", "after")] == [1, 1, 1]
        (text,) = repo.texts("nul")
        assert text["prompt"] == "odd\ufffdprompt for <EMAIL_1>"
    finally:
        writer.close()
        for table in ("traces", "spans", "trace_texts"):
            db.execute(f"DELETE FROM {table}")
        db.close()
