"""Budgets and rate limits shared by every replica: the ``Accountant`` contract in Redis.

    accountant = RedisAccountant("redis://127.0.0.1:6379/0", "postgresql://db/bounded")
    hold = await accountant.reserve(budgets, rates, max_cost, max_tokens, time.time())
    await accountant.settle(hold, actual_cost, actual_tokens)

Each check-and-take is one Lua script, so it is atomic across replicas exactly as the
in-process ``MemoryAccountant`` is atomic on one event loop:

* ``reserve`` checks every budget (hard: refused once spent >= amount, or when spent +
  reserved + this cost would pass it; soft: only flagged for an alert) and every token
  bucket (requests and tokens per minute, refilled continuously, capacity = the limit),
  then takes them all or nothing and says what refused and how long to wait.
* ``settle`` releases the reservation, adds the actual cost to spent and refunds (or
  charges) the difference between reserved and actual tokens.

Money is kept as integers of 1e-10 USD; Redis stores and adds them as 64-bit integers
(HINCRBY), and the scripts compare them as Lua doubles, exact below 2**53 (about
$900,000 in one budget window). Buckets refill on Redis's clock (``TIME`` inside the
script), so the replicas' clocks do not matter for rate limits; budget windows (hour, day,
...) follow the replica's clock, like the ledger's timestamps.

A budget window is one hash per scope, period and window start (``spent``, ``reserved``)
that expires a day after the window resets. When it is missing (first use, or Redis lost
its data), spent is seeded from the ledger (``spend_since`` on the store, in a thread)
with HSETNX, so replicas racing to seed it seed it once.

Every reservation is a hold with an id, recorded with an expiry (``hold_ttl_s``, default
15 minutes). A replica killed mid-request never settles its holds; the next reserve by any
replica releases holds past their expiry, so a crash withholds budget for at most
``hold_ttl_s``. A call that outlives its hold still settles its actual cost.

Redis unreachable: ``reserve`` refuses with 503 ``accountant_unavailable`` (fail closed, no
unchecked spend); a failed ``settle`` is logged, the response still leaves with its ledger
row, and its hold expires as above.

Separate deployments can share one Redis with a key prefix: ``redis://host:6379/0?prefix=
staging:`` (default ``bounded:``). Scripts touch keys they compute, so this is for a single
Redis (or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from bounded.economics.accountant import (
    Hold,
    budget_refusal,
    headers_to_lines,
    rate_refusal,
    ratelimit_headers,
)
from bounded.economics.ledger import E10, to_e10
from bounded.economics.periods import window
from bounded.economics.redis_scripts import RESERVE, SEED, SETTLE, WINDOW_GRACE_S
from bounded.economics.rules import BudgetRule, RateRule
from bounded.economics.spend import spend_since
from bounded.errors import BoundedError, TooManyRequests
from bounded.store.db import Database

log = logging.getLogger("bounded.accountant")

DEFAULT_PREFIX = "bounded:"


class AccountantUnavailable(BoundedError):
    status = 503
    type = "api_error"
    default_code = "accountant_unavailable"


@dataclass
class RedisHold(Hold):
    hold_id: str = ""
    budget_keys: tuple[str, ...] = ()
    # (bucket key, capacity, reserved tokens) for every tokens-per-minute bucket taken.
    token_reserved: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class _Window:
    rule: BudgetRule
    key: str
    start: float
    reset: float | None


@dataclass(frozen=True, slots=True)
class _Take:
    scope: str
    unit: str
    key: str
    limit: int
    amount: int


def split_prefix(url: str) -> tuple[str, str]:
    """``redis://h/0?prefix=x:`` to (``redis://h/0``, ``x:``); redis-py rejects unknown args."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisAccountant:
    def __init__(
        self,
        redis_url: str,
        store_url: str,
        *,
        hold_ttl_s: float = 900.0,
        max_connections: int = 32,
    ):
        url, self.prefix = split_prefix(redis_url)
        # A blocking pool: a burst of requests queues for a connection (up to 5 s) instead
        # of failing with "too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=5,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        self._redis = aioredis.Redis.from_pool(pool)
        self._reserve = self._redis.register_script(RESERVE)
        self._settle = self._redis.register_script(SETTLE)
        self._seed_script = self._redis.register_script(SEED)
        self._store_url = store_url
        self._db: Database | None = None
        self._db_lock = threading.Lock()
        self._hold_ttl_s = int(hold_ttl_s)
        # One ledger query per window key at a time, however many requests find it missing.
        self._seeding: dict[str, asyncio.Future[None]] = {}

    async def reserve(
        self,
        budgets: list[BudgetRule],
        rates: list[RateRule],
        cost: Decimal,
        tokens: int,
        now: float,
    ) -> Hold:
        windows = [self._window(rule, now) for rule in budgets]
        takes = self._takes(rates, tokens)
        hold_id = secrets.token_hex(8)
        holds, hold_key = self.prefix + "holds", self.prefix + "hold:"
        keys = [holds, hold_key + hold_id, *(w.key for w in windows), *(t.key for t in takes)]
        args: list[str | int] = [len(windows), to_e10(cost), self._hold_ttl_s, hold_id, hold_key]
        for w in windows:
            args += [to_e10(w.rule.amount), 1 if w.rule.mode == "hard" else 0]
        for t in takes:
            args += [t.limit, t.amount]
        for _ in range(3):
            reply = await self._call(self._reserve, keys, args)
            if reply[0] != "seed":
                break
            await asyncio.gather(*(self._seed(windows[int(i) - 1], now) for i in reply[1:]))
        else:
            raise AccountantUnavailable("budget counters could not be seeded from the ledger")
        if reply[0] == "budget":
            w = windows[int(reply[1]) - 1]
            spent, reserved = (Decimal(int(v)) / E10 for v in reply[2:4])
            raise budget_refusal(w.rule, spent, w.reset, now, reserved)
        if reply[0] == "rate":
            t = takes[int(reply[1]) - 1]
            raise rate_refusal(t.scope, t.unit, t.limit, float(reply[2]))
        flags, levels = reply[1], [float(level) for level in reply[2:]]
        return RedisHold(
            budgets=[(w.key, cost) for w in windows],
            token_buckets=[(t.key, t.amount) for t in takes if t.unit == "tokens"],
            alerts=[w.rule for w, flag in zip(windows, flags, strict=True) if flag == "1"],
            header_lines=headers_to_lines(_headers(takes, levels)),
            hold_id=hold_id if windows else "",
            budget_keys=tuple(w.key for w in windows),
            token_reserved=tuple((t.key, t.limit, t.amount) for t in takes if t.unit == "tokens"),
        )

    async def settle(self, hold: Hold, cost: Decimal, tokens: int) -> None:
        if hold.settled or not isinstance(hold, RedisHold):
            return
        hold.settled = True
        if not hold.budget_keys and not hold.token_reserved:
            return
        hold_id = hold.hold_id or "-"  # a hold of token buckets only has no record
        buckets = [key for key, _, _ in hold.token_reserved]
        keys = [self.prefix + "holds", self.prefix + "hold:" + hold_id, *hold.budget_keys, *buckets]
        args: list[str | int] = [len(hold.budget_keys), to_e10(cost), hold_id]
        for _, limit, reserved in hold.token_reserved:
            args += [limit, reserved - tokens]
        try:
            await self._settle(keys=keys, args=args)
        except RedisError:
            # The response must still leave and its ledger row be written. The hold expires
            # and is released; spent under-counts this call until its window is re-seeded.
            log.exception("could not settle hold %s in Redis", hold.hold_id)

    async def aclose(self) -> None:
        await self._redis.aclose()
        if self._db is not None:
            await asyncio.to_thread(self._db.close)
            self._db = None

    # -- internals ---------------------------------------------------------------------

    def _window(self, rule: BudgetRule, now: float) -> _Window:
        start, reset = window(rule.period, now)
        key = f"{self.prefix}budget:{rule.scope}|{rule.period}|{start:.0f}"
        return _Window(rule, key, start, reset)

    def _takes(self, rates: list[RateRule], tokens: int) -> list[_Take]:
        takes: list[_Take] = []
        for rate in rates:
            for unit, limit, amount in (("requests", rate.rpm, 1), ("tokens", rate.tpm, tokens)):
                if limit is None:
                    continue
                if amount > limit:
                    raise TooManyRequests(
                        f"request needs {amount} {unit} but {rate.scope} allows {limit} per "
                        "minute; lower max_tokens or raise the limit",
                        code="rate_limit_exceeded",
                    )
                key = f"{self.prefix}bucket:{rate.scope}|{unit}"
                takes.append(_Take(rate.scope, unit, key, limit, amount))
        return takes

    async def _call(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> list[str]:
        try:
            reply = await script(keys=keys, args=args)
        except RedisError as exc:
            raise AccountantUnavailable(
                f"budgets and rate limits are unavailable (Redis: {exc})"
            ) from exc
        return [str(part) for part in reply]

    async def _seed(self, w: _Window, now: float) -> None:
        pending = self._seeding.get(w.key)
        if pending is not None:
            # Another request is seeding this window; then reserve again (its failure, if
            # any, shows up as this request's own next seed attempt).
            await asyncio.wait([pending])
            return
        task = asyncio.ensure_future(self._seed_once(w, now))
        self._seeding[w.key] = task
        try:
            await task
        finally:
            del self._seeding[w.key]

    async def _seed_once(self, w: _Window, now: float) -> None:
        try:
            spent = await asyncio.to_thread(self._spend_since, w.rule.scope, w.start)
        except Exception as exc:  # the store's driver errors, whichever the store is
            message = f"budget spend could not be read from the ledger: {exc}"
            raise AccountantUnavailable(message) from exc
        ttl = 0 if w.reset is None else max(1, int(w.reset - now) + WINDOW_GRACE_S)
        await self._call(self._seed_script, [w.key], [to_e10(spent), ttl])

    def _spend_since(self, scope: str, start: float) -> Decimal:
        with self._db_lock:  # seeds of different windows run in parallel threads
            if self._db is None:
                self._db = Database.open(self._store_url, migrate=False)
        return spend_since(self._db, scope, start)


def _headers(takes: list[_Take], levels: list[float]) -> dict[str, str]:
    """x-ratelimit-* for the tightest bucket of each unit, as MemoryAccountant reports."""
    headers: dict[str, str] = {}
    for unit in ("requests", "tokens"):
        tightest: tuple[float, int] | None = None
        for take, level in zip(takes, levels, strict=True):
            if take.unit == unit and (tightest is None or level < tightest[0]):
                tightest = (level, take.limit)
        if tightest is not None:
            level, limit = tightest
            headers.update(ratelimit_headers(unit, limit, level, (limit - level) * 60 / limit))
    return headers
