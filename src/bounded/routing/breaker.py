"""Circuit breaker per deployment: closed -> open -> half-open -> closed.

Closed: outcomes of the last ``window`` calls are kept; once at least ``min_calls`` are in and
the failure share reaches ``failure_rate``, the breaker opens. Open: no calls for
``cooldown_s``. Half-open: exactly one probe goes through; success closes the breaker with a
clean window, failure opens it again for another cooldown. A probe that ends with no verdict
(cancelled, or a client error) gives its slot back with :meth:`release`; one whose owner
vanished without even that (a stream nobody read) lapses after one cooldown, so a lost probe
can never hold the breaker half-open for good.

    breaker = Breaker(BreakerPolicy())
    if breaker.allow():
        try: ...; breaker.record(ok=True)
        except Unavailable: breaker.record(ok=False)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from bounded.config.schema import BreakerPolicy


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Breaker:
    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self._clock = clock
        self._outcomes: deque[bool] = deque(maxlen=policy.window)
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self._probe_claimed_at = 0.0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.policy.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go to this deployment now? Claims the probe slot when half-open."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and (
            not self._probe_in_flight
            or self._clock() - self._probe_claimed_at >= self.policy.cooldown_s
        ):
            self._probe_in_flight = True
            self._probe_claimed_at = self._clock()
            return True
        return False

    def record(self, ok: bool) -> None:
        if self._opened_at is not None:
            if not self._probe_in_flight:
                return  # a call admitted before the breaker opened; the probe decides
            self._probe_in_flight = False
            if ok:
                self._opened_at = None
                self._outcomes.clear()
            else:
                self._opened_at = self._clock()
            return
        self._outcomes.append(ok)
        failures = self._outcomes.count(False)
        if (
            len(self._outcomes) >= self.policy.min_calls
            and failures / len(self._outcomes) >= self.policy.failure_rate
        ):
            self._opened_at = self._clock()

    def release(self) -> None:
        """A claimed probe ended with no verdict (cancelled, or a client error)."""
        self._probe_in_flight = False

    def snapshot(self) -> dict[str, object]:
        calls = len(self._outcomes)
        return {
            "state": self.state.value,
            "calls": calls,
            "failure_rate": round(self._outcomes.count(False) / calls, 3) if calls else 0.0,
            "probe_in_flight": self._probe_in_flight,
        }
