"""Traces in the store: written off the request path in batches, read back for the API.

    url = trace_store_url(config.server.store)   # sqlite: a sibling file; postgresql: the same
    writer = TraceWriter(url, export=None)       # a thread with its own connection
    writer.put(record)                            # from the event loop; never blocks
    writer.flush()                                # tests and shutdown: wait for the queue
    repo = TraceRepository(db)
    repo.spans(trace_id); repo.search(feature="support-answer", since=ts, status="error")

A request is one row in ``traces``: what search filters on, and its spans as one compact JSON
value (``spans_json``, see :mod:`bounded.telemetry.spanlist`). Rows written before migration
0008 have their spans in the ``spans`` table, still read from there.

Like the ledger's group commit, many traces share one transaction; unlike the ledger, a
trace is not worth making a client wait for, so ``put`` only queues. The queue is bounded:
when the store falls behind, new traces are dropped (and counted in the log) rather than
held in memory without limit. Stored text is redacted here, before it is written: in the
writer's thread, or for a large batch in a child process (:mod:`bounded.telemetry.redactor`:
the detectors hold the GIL, which a busy event loop needs).

Why a sibling SQLite file (``bounded.db`` -> ``bounded-traces.db``, same schema): SQLite has
one writer per file, and a trace batch holding the write lock made the ledger's commit on
the event loop wait for it (measured: requests/s under load halved, p99 up 17 ms). In their
own file, trace writes never hold up a ledger row. PostgreSQL has no such lock: traces stay
in the same database there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bounded.store.db import Database
from bounded.store.urls import dialect_of, sqlite_path
from bounded.telemetry import spanlist
from bounded.telemetry.onloop import OnLoop
from bounded.telemetry.redactor import Redactor
from bounded.telemetry.spans import Span

log = logging.getLogger("bounded.telemetry")

MAX_QUEUE = 20_000
BATCH = 2000
INTERVAL_S = 0.25  # a batch at most this often: one transaction for all that came meanwhile
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
        interval_s: float = INTERVAL_S,
    ):
        self._url = url
        self._export = export
        self._redactor = Redactor(redact)
        self._interval = interval_s
        # A deque, not a Queue: an append takes no lock and wakes no thread. Measured: a
        # writer woken per trace wrote batches of one, and its commits and GIL hand-offs
        # more than doubled the server's CPU per request under load.
        self._pending: deque[TraceRecord | Callable[[], TraceRecord | None]] = deque()
        self._wake = threading.Event()
        self._written = threading.Condition()
        self._puts = self._done = 0
        # Work made on the loop arrives here as its record, or NOTHING (metrics only).
        self._on_loop: OnLoop[TraceRecord] = OnLoop(
            lambda made: self._pending.append(NOTHING if made is None else made)
        )
        self._closing = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="bounded-traces", daemon=True)
        self._thread.start()

    def put(self, record: TraceRecord | Callable[[], TraceRecord | None]) -> None:
        """Queue a trace, or work that makes one (or None): on the event loop, that work
        runs on the loop a moment later (:mod:`bounded.telemetry.onloop` says why);
        elsewhere, in the writer's thread. The writer does the rest (redaction, SQL)."""
        if len(self._pending) + len(self._on_loop) >= MAX_QUEUE:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("trace store behind: %d trace(s) dropped so far", self.dropped)
            return
        self._puts += 1
        if isinstance(record, TraceRecord) or not self._on_loop.offer(record):
            self._pending.append(record)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write what is queued now, and wait for it (True) or ``timeout`` to pass."""
        self._on_loop.run_all(timeout)
        target = self._puts
        self._wake.set()
        with self._written:
            return self._written.wait_for(lambda: self._done >= target, timeout)

    def close(self) -> None:
        self._on_loop.run_all(10.0)
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=10)
        self._redactor.close()

    def _run(self) -> None:
        db: Database | None = None  # opened at the first trace: an idle gateway holds none
        try:
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                closing = self._closing
                while self._pending:
                    batch: list[TraceRecord] = []
                    taken = 0
                    while self._pending and len(batch) < BATCH:
                        item = self._pending.popleft()
                        taken += 1
                        if item is NOTHING:
                            continue
                        record = item if isinstance(item, TraceRecord) else _made(item)
                        if record is not None:
                            batch.append(record)
                    if batch:
                        db = db or self._open()
                        self._write(db, batch)
                    with self._written:
                        self._done += taken
                        self._written.notify_all()
                with self._written:
                    self._written.notify_all()
                if closing:
                    return
        finally:
            if db is not None:
                db.close()

    def _open(self) -> Database:
        db = open_trace_store(self._url)
        assert db is not None  # create=True always opens
        if db.dialect == "sqlite":
            # Traces are not the ledger: an OS crash may lose the last ones, and in return
            # the WAL checkpoints a commit triggers never fsync (measured: the commit was
            # half of the writer's time under load).
            db.execute("PRAGMA synchronous=OFF")
        return db

    def _write(self, db: Database, batch: list[TraceRecord]) -> None:
        try:
            # Redaction only for the traces whose text is kept (the detectors are the
            # costly part of a trace that has text).
            texts = self._text_rows([r for r in batch if r.text_expires_at is not None])
            rows = [_trace_row(r) for r in batch]
            with db.transaction():
                db.executemany(_INSERT_TRACE, rows)
                if texts:
                    db.executemany(_INSERT_TEXT, texts)
        except Exception:
            log.exception("could not store %d trace(s)", len(batch))
        if self._export is not None:
            try:
                self._export(batch)
            except Exception:
                log.exception("could not hand %d trace(s) to the exporter", len(batch))

    def _text_rows(self, kept: list[TraceRecord]) -> list[tuple[object, ...]]:
        """The text rows of the traces that keep text, redacted in one batch (in a child
        process when the batch is large: see :mod:`bounded.telemetry.redactor`)."""
        if not kept:
            return []
        raw = [t for r in kept for t in (r.prompt, r.completion) if t]
        # PostgreSQL refuses NUL in text, and the batch's insert with it: one odd prompt
        # would lose every trace stored beside it. Both stores keep U+FFFD in its place.
        safe = iter(t.replace("\x00", "\ufffd") for t in self._redactor.many(raw))
        rows: list[tuple[object, ...]] = []
        for r in kept:
            prompt = next(safe)[:MAX_TEXT_CHARS] if r.prompt else None
            completion = next(safe)[:MAX_TEXT_CHARS] if r.completion else None
            r.prompt, r.completion = None, None  # the raw text goes no further
            rows.append(
                (
                    r.root.span_id,
                    r.trace_id,
                    r.root.start_ns / 1e9,
                    r.feature,
                    prompt,
                    completion,
                    r.text_expires_at,
                )
            )
        return rows


# Queued for work done on the loop that left no record: counted as done, nothing to store.
NOTHING: Any = object()


def _made(work: Callable[[], TraceRecord | None]) -> TraceRecord | None:
    try:
        return work()
    except Exception:
        log.exception("could not finish a trace")
        return None


def trace_store_url(store_url: str) -> str:
    """Where traces live for a store URL (see the module docstring)."""
    if dialect_of(store_url) != "sqlite":
        return store_url
    path = sqlite_path(store_url)
    name = path.stem + "-traces" + (path.suffix or ".db")
    return f"sqlite:///{path.with_name(name)}"


_creating = threading.Lock()


def open_trace_store(url: str, *, create: bool = True) -> Database | None:
    """A connection to the trace store, migrated to head (created at first use); None
    when ``create`` is false and a SQLite trace file does not exist yet."""
    if not create and dialect_of(url) == "sqlite" and not sqlite_path(url).exists():
        return None
    with _creating:  # the writer and a reader may both be first
        return Database.open(url)


_INSERT_TRACE = (
    "INSERT INTO traces (span_id, trace_id, ts, duration_ms, name, feature, team, model,"
    " deployment, arm, status, http_status, error_class, input_tokens, output_tokens,"
    " cost_e10, spans, spans_json)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        spanlist.encode(r.spans),
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
        """Every span of the trace's requests, by start time (then span id)."""
        rows = self._db.execute("SELECT spans_json FROM traces WHERE trace_id = ?", (trace_id,))
        out: list[dict[str, Any]] = []
        legacy = False
        for row in rows:
            if row["spans_json"] is None:
                legacy = True  # written before migration 0008: its spans are rows of their own
            else:
                out.extend(spanlist.decode(row["spans_json"]))
        if legacy:
            old = self._db.execute(
                "SELECT span_id, parent_id, name, start_ns, end_ns, status, attributes"
                " FROM spans WHERE trace_id = ?",
                (trace_id,),
            )
            out.extend(spanlist.from_legacy(row) for row in old)
        out.sort(key=lambda s: (s["start_time_unix_nano"], s["span_id"]))
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
