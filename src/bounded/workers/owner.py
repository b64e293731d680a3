"""The owner: one process that keeps the counters (and the SQLite ledger) for every worker.

``bounded serve --workers N`` starts it before the workers; each worker holds one Unix
socket connection to it (``remote``). Budgets and rate limits are the embedded
``MemoryAccountant``, unchanged: it is exact on one event loop, and here there is exactly
one loop for all workers. Ledger rows from every worker go through one ``SqlLedger``, so
SQLite has a single writer (no lock contention between processes, no busy waits) and one
loop turn's rows from all workers share one commit.

    owner = Owner(store_url, accountant=True, ledger=True)
    asyncio.run(owner.serve(listening_unix_socket))      # until SIGTERM

A hold lives in the owner until its worker settles it. A worker that dies with holds open
(killed mid-request) has them released when its connection drops, as the Redis accountant
releases a dead replica's holds when they expire: the budget comes back at once, and what
such a request spent is what its ledger row says (none, if it never wrote one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar, cast

from bounded.economics.accountant import Hold, MemoryAccountant
from bounded.economics.ledger import LedgerRowRejected, LedgerUnavailable, SqlLedger
from bounded.economics.spend import spend_since
from bounded.errors import BoundedError, TooManyRequests
from bounded.store.db import Database
from bounded.workers.breakers import BreakerHub
from bounded.workers.wire import (
    FrameError,
    FrameReader,
    Outbox,
    decode_budgets,
    decode_rates,
    frame,
)

log = logging.getLogger("bounded.workers")

T = TypeVar("T")


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (MemoryAccountant's methods) without a task."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the accountant suspended; it must not await")


class Owner:
    def __init__(self, store_url: str, *, accountant: bool, ledger: bool):
        self.db = Database.open(store_url, migrate=False)
        db = self.db
        self.accountant = (
            MemoryAccountant(lambda scope, start: spend_since(db, scope, start))
            if accountant
            else None
        )
        self.ledger = SqlLedger(db) if ledger else None
        self.holds: dict[int, Hold] = {}
        self._next_hold = 0
        self.connections: set[OwnerConnection] = set()
        self.breakers = BreakerHub(self.broadcast)

    def broadcast(self, message: list[Any]) -> None:
        data = frame(message)
        for connection in self.connections:
            connection.write(data)

    async def serve(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        # Ctrl-C reaches the whole process group: the workers finish their requests first,
        # then the supervisor stops this process with SIGTERM.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server = await loop.create_unix_server(lambda: OwnerConnection(self), sock=listener)
        try:
            await stop.wait()
        finally:
            server.close()
            if self.ledger is not None:
                await self.ledger.aclose()
            self.db.close()

    # -- requests ----------------------------------------------------------------------

    def reserve(self, owned: set[int], message: list[Any]) -> list[Any]:
        _, req, budgets, rates, cost, tokens, now = message
        if self.accountant is None:
            raise BoundedError("this owner keeps no counters (server.redis is set)")
        rules = decode_budgets(budgets)
        hold = run_now(
            self.accountant.reserve(rules, decode_rates(rates), Decimal(cost), tokens, now)
        )
        self._next_hold += 1
        hold_id = self._next_hold
        self.holds[hold_id] = hold
        owned.add(hold_id)
        alerts = [i for i, rule in enumerate(rules) if rule in hold.alerts]
        return ["ok", req, hold_id, hold.header_lines, alerts]

    def settle(self, owned: set[int], hold_id: int, cost: Decimal, tokens: int) -> None:
        hold = self.holds.pop(hold_id, None)
        owned.discard(hold_id)
        if hold is not None and self.accountant is not None:
            run_now(self.accountant.settle(hold, cost, tokens))

    def release(self, owned: set[int]) -> None:
        """A worker's connection dropped: give back whatever it still held."""
        for hold_id in list(owned):
            hold = self.holds.get(hold_id)
            if hold is not None:
                reserved = sum((tokens for _, tokens in hold.token_buckets), 0)
                self.settle(owned, hold_id, Decimal(0), reserved)
        if owned:
            log.warning("released %d hold(s) of a worker that went away", len(owned))


class OwnerConnection(asyncio.Protocol):
    """One worker's connection: frames in, answers out, in the order they complete."""

    def __init__(self, owner: Owner):
        self.owner = owner
        self.reader = FrameReader()
        self.owned: set[int] = set()
        self.transport: asyncio.Transport | None = None
        self.outbox = Outbox()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.outbox.transport = self.transport
        self.owner.connections.add(self)
        for state in self.owner.breakers.states():  # a new worker learns what is open
            self.send(state)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.outbox.drop()
        self.owner.connections.discard(self)
        self.owner.release(self.owned)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.reader.feed(data)
        except (FrameError, ValueError):
            log.error("a worker sent a malformed frame; closing its connection")
            if self.transport is not None:
                self.transport.close()
            return
        for message in messages:
            self.handle(message)

    def handle(self, message: list[Any]) -> None:
        op = message[0]
        if op == "s":
            self.owner.settle(self.owned, message[1], Decimal(message[2]), message[3])
            return
        if op == "b":
            self.owner.breakers.event(message[1], message[2], message[3])
            return
        req = message[1]
        try:
            if op == "r":
                self.send(self.owner.reserve(self.owned, message))
            elif op == "l":
                self.record(req, message[2])
            elif op == "a":
                self.alert(req, message[2:])
            else:
                raise BoundedError(f"unknown request {op!r}")
        except BoundedError as exc:
            self.send(error_frame(req, exc))
        except Exception as exc:  # a bug here must answer the worker, not hang its request
            log.exception("owner failed on a %r request", op)
            self.send(error_frame(req, BoundedError(f"owner error: {exc}")))

    def record(self, req: int, values: list[object]) -> None:
        ledger = self.owner.ledger
        if ledger is None:
            raise LedgerUnavailable("this owner keeps no ledger (the store is PostgreSQL)")
        done = ledger.enqueue(values)
        done.add_done_callback(lambda f: self.send(_ack(req, f)))

    def alert(self, req: int, args: list[Any]) -> None:
        ledger = self.owner.ledger
        if ledger is None:
            raise LedgerUnavailable("this owner keeps no ledger (the store is PostgreSQL)")
        ts, scope, period, amount, trace_id = args
        run_now(ledger.record_alert(ts, scope, period, Decimal(amount), trace_id))
        self.send(["ok", req])

    def send(self, message: list[Any]) -> None:
        self.write(frame(message))

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.outbox.put(data)


def _ack(req: int, done: asyncio.Future[None]) -> list[Any]:
    exc = done.exception()
    if exc is None:
        return ["ok", req]
    assert isinstance(exc, BoundedError)
    return error_frame(req, exc)


ERROR_KINDS: dict[type[BoundedError], str] = {
    TooManyRequests: "too_many_requests",
    LedgerRowRejected: "ledger_row_rejected",
    LedgerUnavailable: "ledger_unavailable",
}


def error_frame(req: int, exc: BoundedError) -> list[Any]:
    kind = ERROR_KINDS.get(type(exc), "error")
    retry_after = getattr(exc, "retry_after", None)
    extra = getattr(exc, "extra_headers", None) or {}
    return ["err", req, kind, exc.message, exc.code, retry_after, extra]


def serve_owner(store_url: str, listener: socket.socket, *, accountant: bool, ledger: bool) -> None:
    """The owner process's body (after fork): serve until SIGTERM."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows has none
        runner = asyncio.run
    owner = Owner(store_url, accountant=accountant, ledger=ledger)
    with contextlib.suppress(KeyboardInterrupt):
        runner(owner.serve(listener))
