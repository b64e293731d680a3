"""Traces in the store: written off the request path in batches, read back for the API.

    writer = TraceWriter(db_url, exporter=None)   # a thread with its own connection
    writer.put(record)                            # from the event loop; never blocks
    writer.flush()                                # tests and shutdown: wait for the queue
    repo = TraceRepository(db)
    repo.spans(trace_id); repo.search(feature="support-answer", since=ts, status="error")

Like the ledger's group commit, many traces share one transaction; unlike the ledger, a
trace is not worth making a client wait for, so ``put`` only queues. The queue is bounded:
when the store falls behind, new traces are dropped (and counted in the log) rather than
held in memory without limit. Stored text is redacted here, in the writer's thread (the
detectors cost a few ms per KB: not on the loop), before it is written.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bounded.store.db import Database
from bounded.telemetry.spans import Span

log = logging.getLogger("bounded.telemetry")

MAX_QUEUE = 20_000
BATCH = 512
MAX_TEXT_CHARS = 32_000  # per prompt or completion, after redaction


@dataclass(slots=True)
class TraceRecord:
    """A finished request: its summary row, its spans, and text the policy keeps."""

    trace_id: str
    root: Span
    spans: list[Span]
    feature: str | None
    team: str | None
    model: str | None
    deployment: str | None
    arm: str | None
    http_status: int
    error_class: str | None
    input_tokens: int
    output_tokens: int
    cost_e10: int
    prompt: str | None = None  # raw: redacted by the writer before it is stored
    completion: str | None = None
    text_expires_at: float | None = None
    exported: bool = field(default=False)


class TraceWriter:
    def __init__(
        self,
        url: str,
        *,
        export: Callable[[list[TraceRecord]], None] | None = None,
        redact: Callable[[str], str] | None = None,
    ):
        self._url = url
        self._export = export
        self._redact = redact or _scrub
        self._queue: queue.Queue[TraceRecord | None] = queue.Queue(MAX_QUEUE)
        self._idle = threading.Event()
        self._idle.set()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="bounded-traces", daemon=True)
        self._thread.start()

    def put(self, record: TraceRecord) -> None:
        self._idle.clear()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("trace store behind: %d trace(s) dropped so far", self.dropped)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued trace is written (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.wait(0.01):
                return True
        return False

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        db: Database | None = None  # opened at the first trace: an idle gateway holds none
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._write(db or self._open(), batch)
                        return
                    batch.append(item)
                db = db or self._open()
                self._write(db, batch)
                if self._queue.empty():
                    self._idle.set()
        finally:
            self._idle.set()
            if db is not None:
                db.close()

    def _open(self) -> Database:
        return Database.open(self._url, migrate=False)

    def _write(self, db: Database, batch: list[TraceRecord]) -> None:
        try:
            texts = [self._text_row(r) for r in batch if r.text_expires_at is not None]
            with db.transaction():
                db.executemany(_INSERT_TRACE, [_trace_row(r) for r in batch])
                db.executemany(
                    _INSERT_SPAN, [_span_row(r.trace_id, s) for r in batch for s in r.spans]
                )
                if texts:
                    db.executemany(_INSERT_TEXT, texts)
        except Exception:
            log.exception("could not store %d trace(s)", len(batch))
        if self._export is not None:
            try:
                self._export(batch)
            except Exception:
                log.exception("could not hand %d trace(s) to the exporter", len(batch))

    def _text_row(self, r: TraceRecord) -> tuple[object, ...]:
        prompt = self._redact(r.prompt)[:MAX_TEXT_CHARS] if r.prompt else None
        completion = self._redact(r.completion)[:MAX_TEXT_CHARS] if r.completion else None
        r.prompt, r.completion = None, None  # the raw text goes no further
        return (
            r.root.span_id,
            r.trace_id,
            r.root.start_ns / 1e9,
            r.feature,
            prompt,
            completion,
            r.text_expires_at,
        )


def _scrub(text: str) -> str:
    from bounded.validation.identifiers import scrub

    return scrub(text)


_INSERT_TRACE = (
    "INSERT INTO traces (span_id, trace_id, ts, duration_ms, name, feature, team, model,"
    " deployment, arm, status, http_status, error_class, input_tokens, output_tokens,"
    " cost_e10, spans) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SPAN = (
    "INSERT INTO spans (trace_id, span_id, parent_id, name, start_ns, end_ns, status,"
    " attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TEXT = (
    "INSERT INTO trace_texts (span_id, trace_id, ts, feature, prompt, completion, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _trace_row(r: TraceRecord) -> tuple[object, ...]:
    root = r.root
    return (
        root.span_id, r.trace_id, root.start_ns / 1e9, (root.end_ns - root.start_ns) / 1e6,
        root.name, r.feature, r.team, r.model, r.deployment, r.arm, root.status,
        r.http_status, r.error_class, r.input_tokens, r.output_tokens, r.cost_e10, len(r.spans),
    )  # fmt: skip


def _span_row(trace_id: str, s: Span) -> tuple[object, ...]:
    attrs = {**s.attributes, "bounded.span.kind": s.kind}
    return (
        trace_id, s.span_id, s.parent_id, s.name, s.start_ns, s.end_ns, s.status,
        orjson.dumps(attrs, option=orjson.OPT_NON_STR_KEYS).decode(),
    )  # fmt: skip


# -- reading -----------------------------------------------------------------------------

SUMMARY = (
    "trace_id", "span_id", "ts", "duration_ms", "name", "feature", "team", "model",
    "deployment", "arm", "status", "http_status", "error_class", "input_tokens",
    "output_tokens", "cost_e10", "spans",
)  # fmt: skip


class TraceRepository:
    def __init__(self, db: Database):
        self._db = db

    def requests(self, trace_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            f"SELECT {', '.join(SUMMARY)} FROM traces WHERE trace_id = ? ORDER BY ts", (trace_id,)
        )
        return [_summary(row) for row in rows]

    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT span_id, parent_id, name, start_ns, end_ns, status, attributes FROM spans"
            " WHERE trace_id = ? ORDER BY start_ns, span_id",
            (trace_id,),
        )
        out = []
        for row in rows:
            attrs = orjson.loads(row["attributes"])
            out.append(
                {
                    "span_id": row["span_id"],
                    "parent_span_id": row["parent_id"],
                    "name": row["name"],
                    "kind": attrs.pop("bounded.span.kind", "internal"),
                    "start_time_unix_nano": int(row["start_ns"]),
                    "end_time_unix_nano": int(row["end_ns"]),
                    "duration_ms": round((int(row["end_ns"]) - int(row["start_ns"])) / 1e6, 3),
                    "status": row["status"],
                    "attributes": attrs,
                }
            )
        return out

    def texts(self, trace_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT span_id, prompt, completion, expires_at FROM trace_texts WHERE trace_id = ?"
            " AND expires_at > ?",
            (trace_id, time.time()),
        )
        return [dict(row) for row in rows]

    def search(
        self,
        *,
        feature: str | None = None,
        since: float | None = None,
        until: float | None = None,
        status: str | None = None,
        features: tuple[str, ...] | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first. ``features``: only these (a key limited to some features)."""
        where: list[str] = []
        params: list[object] = []
        for column, value in (("feature", feature), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        if features is not None:
            if not features:
                return []
            where.append(f"feature IN ({', '.join('?' for _ in features)})")
            params.extend(features)
        sql = f"SELECT {', '.join(SUMMARY)} FROM traces"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC LIMIT ?"
        params.append(limit)
        return [_summary(row) for row in self._db.execute(sql, params)]


def _summary(row: Any) -> dict[str, Any]:
    out = {name: row[name] for name in SUMMARY}
    out["cost_usd"] = out.pop("cost_e10") / 1e10
    return out
