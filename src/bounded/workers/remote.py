"""A worker's side of the owner's socket: the ``Accountant`` and ``Ledger`` contracts.

    link = OwnerLink(socket_path)
    gateway = Gateway(config, db=db, accountant=RemoteAccountant(link), ledger=RemoteLedger(link))

One connection per worker, opened on first use, requests pipelined on it and answered by
id. A request costs one round trip to reserve and one to settle: ``settle`` is sent without
waiting and the ledger row after it on the same connection, so the owner has applied the
settlement before it commits (and acknowledges) the row. A row is checked here first
(``check_row``: a bad one is this request's 400, as on one process).

The owner unreachable (it is restarting): reserve and record fail with 503, as the Redis
accountant does when Redis is down; no request is admitted unchecked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from bounded.economics.accountant import Hold
from bounded.economics.ledger import (
    LedgerRow,
    LedgerRowRejected,
    LedgerUnavailable,
    check_alert,
    check_row,
    row_values,
)
from bounded.economics.rules import BudgetRule, RateRule
from bounded.errors import BoundedError, TooManyRequests
from bounded.workers.wire import (
    FrameError,
    FrameReader,
    Outbox,
    encode_budgets,
    encode_rates,
    frame,
)

log = logging.getLogger("bounded.workers")


class AccountantUnavailable(BoundedError):
    status = 503
    type = "api_error"
    default_code = "accountant_unavailable"


@dataclass
class RemoteHold(Hold):
    hold_id: int = 0


class OwnerLink(asyncio.Protocol):
    """The pipelined connection; ``request`` returns the owner's answer (or raises it)."""

    def __init__(self, path: str):
        self.path = path
        self._transport: asyncio.Transport | None = None
        self._outbox = Outbox()
        self._connecting: asyncio.Future[None] | None = None
        self._reader = FrameReader()
        self._waiting: dict[int, asyncio.Future[list[Any]]] = {}
        self._next = 0
        # Breaker states the owner sends, by deployment name (``breakers.SharedBreaker``).
        self.on_breaker: Callable[[list[Any]], None] | None = None

    async def request(self, message: list[Any]) -> list[Any]:
        """``message`` with its id at index 1 (filled in here)."""
        if self._transport is None:
            await self._connect()
        self._next += 1
        req = message[1] = self._next
        done: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting[req] = done
        self._outbox.put(frame(message))
        return await done

    async def send(self, message: list[Any]) -> None:
        """No answer expected; ordered before every later request on this connection."""
        if self._transport is None:
            await self._connect()
        self._outbox.put(frame(message))

    def post(self, message: list[Any]) -> None:
        """Send without waiting, from synchronous code (a breaker's verdict); connects
        first if need be. Lost if the owner is away: it rebuilds its breakers from the
        outcomes that follow."""
        if self._transport is not None:
            self._outbox.put(frame(message))
            return
        task = asyncio.ensure_future(self.send(message))
        task.add_done_callback(_ignore_failure)

    async def connect(self) -> None:
        """Connect now (at start-up): breaker states arrive before the first request."""
        if self._transport is None:
            await self._connect()

    async def _connect(self) -> asyncio.Transport:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        try:
            await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None
        if self._transport is None:
            raise AccountantUnavailable("budgets and rate limits are unavailable (no owner)")
        return self._transport

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.create_unix_connection(lambda: self, self.path), 5)
        except (OSError, TimeoutError) as exc:
            raise AccountantUnavailable(
                f"budgets, rate limits and the ledger are unavailable: the owner process "
                f"does not answer at {self.path} ({exc})"
            ) from exc

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._outbox.transport = self._transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._outbox.drop()
        self._reader = FrameReader()
        waiting, self._waiting = self._waiting, {}
        if waiting:
            log.error("lost the owner process with %d request(s) waiting", len(waiting))
        for done in waiting.values():
            if not done.done():
                done.set_exception(AccountantUnavailable("the owner process went away mid-request"))

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._reader.feed(data)
        except (FrameError, ValueError):
            log.error("malformed frame from the owner process; reconnecting")
            if self._transport is not None:
                self._transport.close()
            return
        for message in messages:
            if message[0] == "B":
                if self.on_breaker is not None:
                    self.on_breaker(message)
                continue
            done = self._waiting.pop(message[1], None)
            if done is None or done.done():
                continue  # its request was cancelled
            if message[0] == "ok":
                done.set_result(message)
            else:
                done.set_exception(_error(message))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _ignore_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("breaker event not delivered: %s", task.exception())


def _error(message: list[Any]) -> BoundedError:
    _, _, kind, text, code, retry_after, extra = message
    error: BoundedError
    if kind == "too_many_requests":
        error = TooManyRequests(text, retry_after=retry_after, code=code)
        error.extra_headers = dict(extra)
    elif kind == "ledger_row_rejected":
        error = LedgerRowRejected(text, code=code)
    elif kind == "ledger_unavailable":
        error = LedgerUnavailable(text, code=code)
    else:
        error = AccountantUnavailable(text)
    return error


class RemoteAccountant:
    def __init__(self, link: OwnerLink):
        self._link = link

    async def reserve(
        self,
        budgets: list[BudgetRule],
        rates: list[RateRule],
        cost: Decimal,
        tokens: int,
        now: float,
    ) -> Hold:
        reply = await self._link.request(
            ["r", 0, encode_budgets(budgets), encode_rates(rates), str(cost), tokens, now]
        )
        _, _, hold_id, lines, alerts = reply
        return RemoteHold(
            budgets=[(rule.scope, cost) for rule in budgets],
            token_buckets=[(rate.scope, tokens) for rate in rates if rate.tpm is not None],
            alerts=[budgets[i] for i in alerts],
            header_lines=lines,
            hold_id=hold_id,
        )

    async def settle(self, hold: Hold, cost: Decimal, tokens: int) -> None:
        if hold.settled or not isinstance(hold, RemoteHold):
            return
        hold.settled = True
        try:
            await self._link.send(["s", hold.hold_id, str(cost), tokens])
        except BoundedError:
            # The owner is gone, and with it the hold: nothing is left to settle.
            log.warning("could not settle hold %d: the owner process is away", hold.hold_id)

    async def aclose(self) -> None:
        self._link.close()


class RemoteLedger:
    def __init__(self, link: OwnerLink):
        self._link = link

    async def record(self, row: LedgerRow) -> None:
        check_row(row)
        try:
            await self._link.request(["l", 0, row_values(row)])
        except AccountantUnavailable as exc:
            raise LedgerUnavailable(f"cost ledger write failed: {exc.message}") from exc

    async def record_alert(
        self, ts: float, scope: str, period: str, amount: Decimal, trace_id: str
    ) -> None:
        check_alert(scope, period, trace_id)
        await self._link.request(["a", 0, ts, scope, period, str(amount), trace_id])

    async def aclose(self) -> None:
        self._link.close()
