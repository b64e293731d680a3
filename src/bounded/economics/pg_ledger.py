"""The cost ledger in PostgreSQL, for replicas that share one store.

    ledger = PostgresLedger("postgresql://db/bounded")
    await ledger.record(row)      # returns once the row is committed; then respond

Group commit: one flusher task writes whatever rows are waiting in one transaction; rows
that arrive while a flush is in progress wait for it and form the next batch. Under load
many responses share one commit (one WAL flush in PostgreSQL) instead of paying one each,
yet every ``record`` returns only after its own row is committed, so a response never
leaves before its row is durable.

One bad row never fails the others. ``record`` refuses a row no store could take
(``check_row``: over-long ids, NUL characters) with ``InvalidLedgerRow`` before it is queued.
When PostgreSQL still refuses a batch for what is in it (an error of SQLSTATE class 22, 23,
54 or P0, or a value psycopg cannot send) and the connection is fine, the batch's rows are
written again one at a time (each its own commit): only the refused ones fail, with
``LedgerRowRejected``. When the connection is found lost, the batch is written once more on
a fresh connection (PostgreSQL restarted, or a proxy dropped the idle connection): it was
not committed, so nothing can be counted twice. A connection lost during COMMIT itself is
not retried, since the rows may be in. Any other failure fails the batch with
``LedgerUnavailable`` (503), and the next batch reconnects.

The connection (psycopg's ``AsyncConnection``) opens on the first record, not at start-up,
so a gateway starts while PostgreSQL is briefly unavailable and reports it per request.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import psycopg
from psycopg import pq

from bounded.economics.ledger import (
    INSERT,
    LedgerRow,
    LedgerRowRejected,
    LedgerUnavailable,
    check_alert,
    check_row,
    row_values,
)
from bounded.store.urls import psycopg_url

log = logging.getLogger("bounded.ledger")

_ROW = INSERT.replace("?", "%s")
_ALERT = (
    "INSERT INTO budget_alerts (ts, scope, period, amount_usd, trace_id)"
    " VALUES (%s, %s, %s, %s, %s)"
)

# (is an alert, values, resolved once committed)
_Pending = tuple[bool, tuple[object, ...], asyncio.Future[None]]

# SQLSTATE classes one row's values can cause: data exception (a value too long or out of
# range), integrity constraint, program limit (an index entry over the btree limit), raised
# by a trigger. Any other error (a missing table, a timeout, a full disk) would fail every
# row alike, and one by one it would only take N times as long.
_ROW_ERRORS = ("22", "23", "54", "P0")


class _CommitInDoubt(Exception):
    """The connection was lost during COMMIT: the batch may or may not be in."""


class PostgresLedger:
    def __init__(self, url: str, *, connect_timeout_s: int = 5):
        self._url = psycopg_url(url)
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def record(self, row: LedgerRow) -> None:
        check_row(row)
        await self._enqueue(False, row_values(row))

    async def record_alert(
        self, ts: float, scope: str, period: str, amount: Decimal, trace_id: str
    ) -> None:
        check_alert(scope, period, trace_id)
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
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        """Write one batch in one transaction; on failure fail only the rows that must."""
        reconnected = False
        while True:
            stale = self._conn is not None  # opened for an earlier batch: it may have died idle
            try:
                await self._write(batch)
            except Exception as exc:
                if self._usable() and _about_a_row(exc):
                    log.warning(
                        "PostgreSQL refused a batch of %d ledger row(s) (%r);"
                        " writing them one at a time",
                        len(batch),
                        exc,
                    )
                    await self._write_each(batch)
                    return
                usable = self._usable()
                await self._drop_connection()
                if stale and not usable and not reconnected and not isinstance(exc, _CommitInDoubt):
                    log.warning("the ledger connection was lost (%r); reconnecting once", exc)
                    reconnected = True
                    continue
                log.exception("ledger write failed for %d row(s)", len(batch))
                _fail(batch, LedgerUnavailable(f"cost ledger write failed: {exc}"))
                return
            for _, _, done in batch:
                _resolve(done, None)
            return

    async def _write_each(self, batch: list[_Pending]) -> None:
        """Each row its own transaction: the good ones commit, the refused ones fail."""
        for i, (_, values, done) in enumerate(batch):
            try:
                await self._write([batch[i]])
            except Exception as exc:
                if not self._usable():
                    log.exception("ledger write failed for %d row(s)", len(batch) - i)
                    await self._drop_connection()
                    _fail(batch[i:], LedgerUnavailable(f"cost ledger write failed: {exc}"))
                    return
                log.error("PostgreSQL refused a ledger row: %r (%r)", exc, values)
                _resolve(done, LedgerRowRejected(f"cost ledger refused this row: {exc}"))
            else:
                _resolve(done, None)

    async def _write(self, batch: list[_Pending]) -> None:
        conn = await self._connection()
        rows = [values for alert, values, _ in batch if not alert]
        alerts = [values for alert, values, _ in batch if alert]
        committing = False
        try:
            async with conn.transaction():
                async with conn.cursor() as cur:
                    if rows:
                        await cur.executemany(_ROW, rows)
                    if alerts:
                        await cur.executemany(_ALERT, alerts)
                committing = True  # leaving the block sends COMMIT
        except Exception as exc:
            if committing and not self._usable():
                raise _CommitInDoubt(str(exc)) from exc
            raise

    def _usable(self) -> bool:
        """Is the connection open and idle, so that the failure was about what was sent?"""
        conn = self._conn
        return (
            conn is not None
            and not conn.broken
            and conn.info.transaction_status == pq.TransactionStatus.IDLE
        )

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


def _about_a_row(exc: BaseException) -> bool:
    """Could one row's values have caused this? Errors psycopg raises before sending (a NUL
    character in text, a value it cannot adapt) have no SQLSTATE and are about a value."""
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate is None or sqlstate[:2] in _ROW_ERRORS


def _resolve(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _fail(batch: list[_Pending], error: BaseException) -> None:
    for _, _, done in batch:
        _resolve(done, error)
