"""Circuit breakers shared by the workers: one verdict per deployment, kept by the owner.

Each worker's router keeps calling ``allow`` / ``record`` / ``release`` on its breakers, which
stay synchronous and local (no round trip on the request path). The worker's
``SharedBreaker`` reports every outcome to the owner without waiting; the owner's
``HubBreaker`` runs the one window of outcomes from all workers, opens and closes exactly as
a breaker in one process would, and sends its state to every worker the moment it changes
(times are ``time.monotonic()``, CLOCK_MONOTONIC, the same clock in every process).

So a deployment failing on one worker's connections opens the breaker on all of them, and a
probe's verdict closes (or re-opens) it everywhere. What stays per worker: the instant the
state travels (a fraction of a millisecond), and the half-open probe claim, which is local
first: workers that claim the probe in that same instant each send one (at most one per
worker; the owner counts the first verdict and tells the others the probe is taken).

Wire (``wire`` frames, no answers)::

    worker -> owner  ["b", name, [window, min_calls, failure_rate, cooldown_s], event]
                     event: "ok" | "fail" | "claim" | "probe_ok" | "probe_fail" | "release"
    owner -> worker  ["B", name, opened_at | null, probe_in_flight, calls, failures]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bounded.config.schema import BreakerPolicy
from bounded.routing.breaker import Breaker


def policy_fields(policy: BreakerPolicy) -> list[Any]:
    return [policy.window, policy.min_calls, policy.failure_rate, policy.cooldown_s]


class SharedBreaker(Breaker):
    """A worker's mirror of the owner's breaker for one deployment."""

    def __init__(self, name: str, policy: BreakerPolicy, post: Callable[[list[Any]], None]):
        super().__init__(policy)
        self.name = name
        self._post = post
        self._policy_fields = policy_fields(policy)
        self._mine = False  # this worker holds the half-open probe
        self._calls = 0
        self._failures = 0

    def _tell(self, event: str) -> None:
        self._post(["b", self.name, self._policy_fields, event])

    def allow(self) -> bool:
        allowed = super().allow()
        if allowed and self._opened_at is not None:
            self._mine = True  # claimed the half-open probe here (or took over a lapsed one)
            self._tell("claim")
        return allowed

    def record(self, ok: bool) -> None:
        if self._opened_at is None:
            self._tell("ok" if ok else "fail")  # the owner's window decides
            return
        if not self._mine:
            return  # admitted before the breaker opened; the probe decides
        self._mine = False
        self._tell("probe_ok" if ok else "probe_fail")
        super().record(ok)  # the same verdict here at once; the owner's follows

    def release(self) -> None:
        if self._mine:
            self._mine = False
            self._tell("release")
        super().release()

    def apply(self, opened_at: float | None, probe: bool, calls: int, failures: int) -> None:
        """The owner's state (the owner's word wins, except for a probe this worker holds)."""
        self._opened_at = opened_at
        if opened_at is None:
            self._outcomes.clear()
            self._mine = False
        if not self._mine:
            self._probe_in_flight = probe
            if probe:
                self._probe_claimed_at = self._clock()
        self._calls, self._failures = calls, failures

    def snapshot(self) -> dict[str, object]:
        calls = self._calls
        return {
            "state": self.state.value,
            "calls": calls,
            "failure_rate": round(self._failures / calls, 3) if calls else 0.0,
            "probe_in_flight": self._probe_in_flight,
        }


class HubBreaker(Breaker):
    """The owner's breaker for one deployment: every worker's outcomes in one window."""

    def event(self, event: str) -> None:
        if event in ("ok", "fail"):
            if self._opened_at is None:
                self.record(event == "ok")
        elif event == "claim":
            self.allow()
        elif event in ("probe_ok", "probe_fail"):
            if self._opened_at is not None:
                self._probe_in_flight = True  # this verdict is the probe's, whoever sent it
                self.record(event == "probe_ok")
        elif event == "release":
            self.release()

    def state_message(self, name: str) -> list[Any]:
        failures = self._outcomes.count(False)
        return ["B", name, self._opened_at, self._probe_in_flight, len(self._outcomes), failures]

    def key(self) -> tuple[Any, ...]:
        return (self._opened_at, self._probe_in_flight)


class BreakerHub:
    """The owner's side: breakers by deployment name, state sent to every worker on change."""

    def __init__(self, broadcast: Callable[[list[Any]], None]):
        self._broadcast = broadcast
        self._breakers: dict[str, tuple[list[Any], HubBreaker]] = {}

    def event(self, name: str, policy: list[Any], event: str) -> None:
        entry = self._breakers.get(name)
        if entry is None or entry[0] != policy:
            window, min_calls, failure_rate, cooldown_s = policy
            fresh = BreakerPolicy(
                window=window, min_calls=min_calls, failure_rate=failure_rate, cooldown_s=cooldown_s
            )
            entry = self._breakers[name] = (policy, HubBreaker(fresh))
        breaker = entry[1]
        before = breaker.key()
        calls = len(breaker._outcomes)
        breaker.event(event)
        # State changes go out at once; so does the window now and then, for /readyz.
        if breaker.key() != before or (len(breaker._outcomes) != calls and calls % 10 == 0):
            self._broadcast(breaker.state_message(name))

    def states(self) -> list[list[Any]]:
        """Every breaker's state, for a worker that has just connected."""
        return [breaker.state_message(name) for name, (_, breaker) in self._breakers.items()]


class BreakerShare:
    """A worker's registry: its routers' breakers become ``SharedBreaker`` mirrors.

    ``share(runtime.router)`` after every runtime build (start-up and each reload); a
    breaker carried over by a reload is already shared and kept as it is.
    """

    def __init__(self, post: Callable[[list[Any]], None]):
        self._post = post
        self._by_name: dict[str, SharedBreaker] = {}
        self._known: dict[str, list[Any]] = {}  # states that arrived before their breaker

    def share(self, breakers: dict[str, Breaker]) -> None:
        for name, breaker in list(breakers.items()):
            if not isinstance(breaker, SharedBreaker):
                breaker = breakers[name] = SharedBreaker(name, breaker.policy, self._post)
            self._by_name[name] = breaker
            known = self._known.get(name)
            if known is not None:
                breaker.apply(*known[2:])

    def on_state(self, message: list[Any]) -> None:
        name = message[1]
        self._known[name] = message
        breaker = self._by_name.get(name)
        if breaker is not None:
            breaker.apply(*message[2:])
