"""The cost ledger in PostgreSQL, for replicas that share one store.

    ledger = PostgresLedger("postgresql://db/bounded")
    await ledger.record(row)      # returns once the row is committed; then respond

Group commit: one flusher task writes whatever rows are waiting in one transaction; rows
that arrive while a flush is in progress wait for it and form the next batch. Under load
many responses share one commit (one WAL flush in PostgreSQL) instead of paying one each,
yet every ``record`` returns only after its own row is committed, so a response never
leaves before its row is durable. A batch that fails raises ``LedgerUnavailable`` for its
rows, and the next batch reconnects.

The connection (psycopg's ``AsyncConnection``) opens on the first record, not at start-up,
so a gateway starts while PostgreSQL is briefly unavailable and reports it per request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import astuple
from decimal import Decimal

import psycopg

from bounded.economics.ledger import INSERT, LedgerRow, LedgerUnavailable
from bounded.store.db import psycopg_url

log = logging.getLogger("bounded.ledger")

_ROW = INSERT.replace("?", "%s")
_ALERT = (
    "INSERT INTO budget_alerts (ts, scope, period, amount_usd, trace_id)"
    " VALUES (%s, %s, %s, %s, %s)"
)

# (is an alert, values, resolved once committed)
_Pending = tuple[bool, tuple[object, ...], asyncio.Future[None]]


class PostgresLedger:
    def __init__(self, url: str, *, connect_timeout_s: int = 5):
        self._url = psycopg_url(url)
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def record(self, row: LedgerRow) -> None:
        await self._enqueue(False, astuple(row))

    async def record_alert(
        self, ts: float, scope: str, period: str, amount: Decimal, trace_id: str
    ) -> None:
        await self._enqueue(True, (ts, scope, period, str(amount), trace_id))

    async def aclose(self) -> None:
        """Commit what is waiting, then close the connection."""
        self._closed = True
        if self._flusher is not None:
            await asyncio.wait([self._flusher])
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _enqueue(self, alert: bool, values: tuple[object, ...]) -> None:
        if self._closed:
            raise LedgerUnavailable("cost ledger is closed")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Its caller may be gone by the time a failure is set: never an unretrieved error.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.append((alert, values, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        # Shielded: a client that goes away must not cancel the commit its row is part of;
        # the row is written either way and the flusher outlives this caller.
        await asyncio.shield(done)

    async def _flush_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write(batch)
            except Exception as exc:
                log.exception("ledger write failed for %d row(s)", len(batch))
                await self._drop_connection()
                error = LedgerUnavailable(f"cost ledger write failed: {exc}")
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                continue
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _write(self, batch: list[_Pending]) -> None:
        conn = await self._connection()
        rows = [values for alert, values, _ in batch if not alert]
        alerts = [values for alert, values, _ in batch if alert]
        async with conn.transaction(), conn.cursor() as cur:
            if rows:
                await cur.executemany(_ROW, rows)
            if alerts:
                await cur.executemany(_ALERT, alerts)

    async def _connection(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout_s
            )
        return self._conn

    async def _drop_connection(self) -> None:
        """After a failure the connection may be broken: close it; the next batch reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # closing a broken connection must not mask the write error
                log.debug("closing the ledger connection failed", exc_info=True)
