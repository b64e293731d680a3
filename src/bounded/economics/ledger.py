"""The cost ledger: one row per request, durable before the client gets its answer.

Rows are written with group commit: every row recorded during one turn of the event loop
goes into one transaction, and each ``record`` call returns only once its row is
committed. SQLite in WAL mode with ``synchronous=NORMAL`` makes a commit one ``write()``
into the WAL and no fsync, so there is no disk sync per request on the hot path, yet a row
survives the process being killed the instant after its response left.

    ledger = SqlLedger(Database.open(url))
    await ledger.record(row)      # then respond
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from bounded.economics.usage import Usage
from bounded.errors import BoundedError
from bounded.store.db import Database, sqlite_path

log = logging.getLogger("bounded.ledger")

E10 = Decimal("1e10")


class LedgerUnavailable(BoundedError):
    status = 503
    type = "api_error"
    default_code = "ledger_unavailable"


@dataclass(slots=True)
class LedgerRow:
    ts: float
    trace_id: str
    session_id: str | None
    key_id: str | None
    team: str | None
    feature: str | None
    arm: str
    provider: str | None
    deployment: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_e10: int
    usage_source: str
    latency_ms: float
    ttft_ms: float | None
    status: int
    error_class: str | None
    attempts: int
    stream: bool

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_e10) / E10


COLUMNS = tuple(LedgerRow.__dataclass_fields__)
INSERT = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def to_e10(cost: Decimal) -> int:
    return int((cost * E10).to_integral_value())


def usage_fields(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


class Ledger(Protocol):
    async def record(self, row: LedgerRow) -> None: ...

    async def record_alert(
        self, ts: float, scope: str, period: str, amount: Decimal, trace_id: str
    ) -> None: ...

    async def aclose(self) -> None: ...


class SqlLedger:
    """Group-committed writes through the store's synchronous connection (SQLite)."""

    def __init__(self, db: Database):
        self._db = db
        self._pending: list[tuple[tuple[object, ...], asyncio.Future[None]]] = []
        self._scheduled = False
        self._checkpointer = Checkpointer.start(db) if db.dialect == "sqlite" else None

    async def record(self, row: LedgerRow) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((tuple([getattr(row, c) for c in COLUMNS]), done))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await done

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        try:
            with self._db.transaction():
                self._db.executemany(INSERT, [values for values, _ in batch])
        except Exception as exc:
            log.exception("ledger write failed for %d row(s)", len(batch))
            for _, done in batch:
                if not done.done():
                    done.set_exception(LedgerUnavailable(f"cost ledger write failed: {exc}"))
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def record_alert(
        self, ts: float, scope: str, period: str, amount: Decimal, trace_id: str
    ) -> None:
        self._db.execute(
            "INSERT INTO budget_alerts (ts, scope, period, amount_usd, trace_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (ts, scope, period, str(amount), trace_id),
        )

    async def aclose(self) -> None:
        if self._pending:
            self._flush()
        if self._checkpointer is not None:
            self._checkpointer.stop()


class Checkpointer:
    """Moves the WAL back into the database file from a thread of its own.

    SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, which
    put a periodic multi-millisecond stall on one unlucky request. Here the serving
    connection never checkpoints; this thread does a PASSIVE checkpoint (never blocks
    writers) about once a second on its own connection.
    """

    def __init__(self, path: str, interval_s: float):
        self._path = path
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="bounded-wal-checkpoint", daemon=True
        )

    @classmethod
    def start(cls, db: Database, interval_s: float = 1.0) -> Checkpointer:
        db.execute("PRAGMA wal_autocheckpoint=0")
        checkpointer = cls(str(sqlite_path(db.url)), interval_s)
        checkpointer._thread.start()
        return checkpointer

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=10)
        try:
            while not self._stop.wait(self._interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.warning("WAL checkpoint failed; will retry", exc_info=True)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
