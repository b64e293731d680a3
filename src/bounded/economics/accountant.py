"""Admission: reserve before the call, settle after it, so concurrency cannot overspend.

``reserve`` checks every applicable budget (spent + reserved + this request's maximum cost
must stay within the amount) and every rate limit (token buckets for requests and tokens
per minute) and takes them all, or takes nothing and raises ``TooManyRequests``. ``settle``
replaces the reservation with the actual cost and token count.

    hold = await accountant.reserve(budgets, rates, max_cost, max_tokens, time.time())
    ...call the model...
    await accountant.settle(hold, actual_cost, actual_tokens)

This module is the embedded default: state in this process, spend seeded from the ledger.
Checks and updates run with no ``await`` between them, so on one event loop they are atomic.
``bounded.economics.redis_accountant`` is the same contract for many replicas.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from bounded.economics.periods import describe_reset, window
from bounded.economics.rules import BudgetRule, RateRule
from bounded.errors import TooManyRequests


@dataclass
class Hold:
    """What one request has reserved, to be settled exactly once."""

    budgets: list[tuple[str, Decimal]] = field(default_factory=list)
    token_buckets: list[tuple[str, int]] = field(default_factory=list)
    alerts: list[BudgetRule] = field(default_factory=list)
    settled: bool = False
    # The most the request may cost, as reserved: settling above it is an overrun.
    reserved_cost: Decimal = Decimal(0)
    # The x-ratelimit-* headers as HTTP header lines ("name: value\r\n" each). Made only of
    # header names, digits and duration units, they need no check: a JSON answer sends them
    # as they are (six headers, written and checked one by one, cost a third of all that
    # economics added to a request).
    header_lines: str = ""

    def headers(self) -> dict[str, str]:
        """The x-ratelimit-* headers as a dict (for streams, errors, other servers)."""
        return lines_to_headers(self.header_lines) if self.header_lines else {}


class Accountant(Protocol):
    async def reserve(
        self,
        budgets: list[BudgetRule],
        rates: list[RateRule],
        cost: Decimal,
        tokens: int,
        now: float,
    ) -> Hold: ...

    async def settle(self, hold: Hold, cost: Decimal, tokens: int) -> None: ...

    async def aclose(self) -> None: ...


SpendSeed = Callable[[str, float], Decimal]
_ZERO = Decimal(0)
# A rate limit scope's two bucket names, made once per scope, not twice per request.
_bucket_names: dict[str, tuple[str, str]] = {}


def _names_for(scope: str) -> tuple[str, str]:
    if len(_bucket_names) >= 65536:  # a scope per virtual key: keep it bounded
        _bucket_names.clear()
    names = _bucket_names[scope] = (f"{scope}|requests", f"{scope}|tokens")
    return names


@dataclass(slots=True)
class _Bucket:
    """One token bucket; it carries what its ``x-ratelimit-*`` headers need, so that a
    request's header lines are written straight from the buckets it took from."""

    name: str
    unit: str  # requests | tokens
    limit: int
    level: float
    updated: float
    per_s: float = 0.0  # refill rate
    # Its header lines' fixed parts, made once: the limit's whole line and the remaining
    # one's name ("x-ratelimit-limit-<unit>: <limit>\r\nx-ratelimit-remaining-<unit>: "),
    # then the reset's name ("\r\nx-ratelimit-reset-<unit>: ").
    lead: str = ""
    reset_prefix: str = ""

    def __post_init__(self) -> None:
        self.per_s = self.limit / 60.0
        limit_name, remaining_name, reset_name = _HEADER_NAMES[self.unit]
        self.lead = f"{limit_name}: {self.limit}\r\n{remaining_name}: "
        self.reset_prefix = f"\r\n{reset_name}: "

    def wait_for(self, amount: float) -> float:
        return max(0.0, (amount - self.level) / self.per_s)


class MemoryAccountant:
    def __init__(self, seed: SpendSeed, clock: Callable[[], float] = time.monotonic):
        self._seed = seed
        self._clock = clock
        self._spent: dict[str, Decimal] = {}
        self._reserved: dict[str, Decimal] = {}
        self._buckets: dict[str, _Bucket] = {}
        # (scope, period) -> (window start, end, spend key, reset) of the current window.
        self._windows: dict[tuple[str, str], tuple[float, float, str, float | None]] = {}

    async def reserve(
        self,
        budgets: list[BudgetRule],
        rates: list[RateRule],
        cost: Decimal,
        tokens: int,
        now: float,
    ) -> Hold:
        keys: list[str] = []
        for rule in budgets:
            key, reset = self._budget_state(rule, now)
            spent = self._spent[key]
            reserved = self._reserved.get(key, _ZERO)
            if rule.mode == "hard" and (
                spent >= rule.amount or spent + reserved + cost > rule.amount
            ):
                raise budget_refusal(rule, spent, reset, now, reserved)
            keys.append(key)
        mono = self._clock()
        # Every bucket this request takes from, with the amount.
        takes: list[tuple[_Bucket, float]] = []
        for rate in rates:
            names = _bucket_names.get(rate.scope) or _names_for(rate.scope)
            if rate.rpm is not None:
                takes.append((self._check(names[0], rate.scope, "requests", rate.rpm, 1, mono), 1))
            if rate.tpm is not None:
                bucket = self._check(names[1], rate.scope, "tokens", rate.tpm, tokens, mono)
                takes.append((bucket, tokens))
        # Every check passed: take everything (no await since the checks: atomic).
        taken: list[tuple[str, Decimal]] = []
        alerts: list[BudgetRule] = []
        for rule, key in zip(budgets, keys, strict=True):
            self._reserved[key] = self._reserved.get(key, _ZERO) + cost
            taken.append((key, cost))
            if rule.mode == "soft" and self._spent[key] + cost > rule.amount:
                alerts.append(rule)
        token_buckets: list[tuple[str, int]] = []
        for bucket, amount in takes:
            bucket.level -= amount
            if bucket.unit == "tokens":
                token_buckets.append((bucket.name, int(amount)))
        # One rate limit (the usual case) has one bucket of each unit: its own headers.
        lines = _tightest_lines(takes) if len(rates) > 1 else _header_lines(takes)
        return Hold(taken, token_buckets, alerts, header_lines=lines)

    def _check(
        self, name: str, scope: str, unit: str, limit: int, amount: float, now: float
    ) -> _Bucket:
        """The bucket ``amount`` would come from, refilled to ``now``; raises if it can't."""
        bucket = self._buckets.get(name)
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[name] = _Bucket(name, unit, limit, float(limit), now)
        level = bucket.level + (now - bucket.updated) * bucket.per_s
        bucket.level = level if level < limit else float(limit)
        bucket.updated = now
        if amount > limit:
            raise TooManyRequests(
                f"request needs {amount} {unit} but {scope} allows {limit} per "
                "minute; lower max_tokens or raise the limit",
                code="rate_limit_exceeded",
            )
        if bucket.level < amount:
            raise rate_refusal(scope, unit, limit, bucket.wait_for(amount))
        return bucket

    async def settle(self, hold: Hold, cost: Decimal, tokens: int) -> None:
        if hold.settled:
            return
        hold.settled = True
        for key, reserved in hold.budgets:
            self._reserved[key] -= reserved
            self._spent[key] += cost
        for name, reserved_tokens in hold.token_buckets:
            bucket = self._buckets[name]
            # Refund what the estimate over-reserved (or charge what it under-reserved).
            level = bucket.level + reserved_tokens - tokens
            bucket.level = level if level < bucket.limit else float(bucket.limit)

    async def aclose(self) -> None:
        return None

    def _budget_state(self, rule: BudgetRule, now: float) -> tuple[str, float | None]:
        # The window's key and reset, computed once per window rather than per request
        # (the calendar arithmetic was a tenth of the cost of admission).
        cached = self._windows.get((rule.scope, rule.period))
        if cached is not None and cached[0] <= now < cached[1]:
            return cached[2], cached[3]
        start, reset = window(rule.period, now)
        key = f"{rule.scope}|{rule.period}|{start:.0f}"
        if key not in self._spent:
            self._spent[key] = self._seed(rule.scope, start)
        self._windows[(rule.scope, rule.period)] = (
            start,
            math.inf if reset is None else reset,
            key,
            reset,
        )
        return key, reset


def _tightest_lines(takes: list[tuple[_Bucket, float]]) -> str:
    """x-ratelimit-* for the tightest bucket of each unit (the lowest level), after the take."""
    tightest: dict[str, tuple[_Bucket, float]] = {}
    for take in takes:
        found = tightest.get(take[0].unit)
        if found is None or take[0].level < found[0].level:
            tightest[take[0].unit] = take
    return _header_lines(list(tightest.values()))


def _header_lines(takes: list[tuple[_Bucket, float]]) -> str:
    """The x-ratelimit-* header lines of buckets of distinct units, from the buckets."""
    lines = ""
    for bucket, _ in takes:
        level = bucket.level
        remaining = str(int(level)) if level > 0 else "0"  # int() floors it
        reset = reset_duration((bucket.limit - level) / bucket.per_s)
        lines += f"{bucket.lead}{remaining}{bucket.reset_prefix}{reset}\r\n"
    return lines


def headers_to_lines(headers: dict[str, str]) -> str:
    """Headers as header lines, "name: value\r\n" each (values bounded wrote itself)."""
    return "".join([f"{name}: {value}\r\n" for name, value in headers.items()])


def lines_to_headers(lines: str) -> dict[str, str]:
    """Header lines ("name: value\r\n" each) as a dict."""
    return dict(line.split(": ", 1) for line in lines.split("\r\n") if line)


def ratelimit_headers(unit: str, limit: int, remaining: float, reset_s: float) -> dict[str, str]:
    limit_name, remaining_name, reset_name = _HEADER_NAMES[unit]
    return {
        limit_name: str(limit),
        remaining_name: str(math.floor(remaining)) if remaining > 0 else "0",
        reset_name: reset_duration(reset_s),
    }


def reset_duration(seconds: float) -> str:
    """A wait as OpenAI spells it in ``x-ratelimit-reset-*``: ``0s``, ``12ms``, ``17.5s``,
    ``1m0s`` (Go's duration format, to the millisecond, rounded up: a client that waits
    that long finds the bucket full). A float's own spelling (``6e-07s``) broke the parsers
    clients use for OpenAI's headers."""
    ms = math.ceil(seconds * 1000) if seconds > 0 else 0
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    minutes, ms = divmod(ms, 60_000)
    whole, frac = divmod(ms, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0") + "s" if frac else f"{whole}s"
    return f"{minutes}m{secs}" if minutes else secs


_HEADER_NAMES = {
    unit: (
        f"x-ratelimit-limit-{unit}",
        f"x-ratelimit-remaining-{unit}",
        f"x-ratelimit-reset-{unit}",
    )
    for unit in ("requests", "tokens")
}


def budget_refusal(
    rule: BudgetRule,
    spent: Decimal,
    reset: float | None,
    now: float,
    reserved: Decimal = Decimal(0),
) -> TooManyRequests:
    # Under concurrency the room is often taken by reservations, not yet by spend.
    held = (
        f", ${reserved.quantize(Decimal('0.000001'))} held by requests in progress"
        if reserved
        else ""
    )
    return TooManyRequests(
        f"{rule.label} is exhausted (spent ${spent.quantize(Decimal('0.000001'))}{held}); "
        f"it resets {describe_reset(reset)}",
        code="budget_exceeded",
        retry_after=None if reset is None else reset - now,
    )


def rate_refusal(scope: str, unit: str, limit: int, wait: float) -> TooManyRequests:
    error = TooManyRequests(
        f"rate limit of {limit} {unit} per minute for {scope} reached; retry in {wait:.1f}s",
        code="rate_limit_exceeded",
        retry_after=wait,
    )
    error.extra_headers = ratelimit_headers(unit, limit, 0, wait)
    return error
