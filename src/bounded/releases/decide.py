"""From each arm's requests to a decision: promote, roll back, or keep watching.

    stable = [Sample(error=False, validation_failed=False, latency_ms=80, cost=0.001), ...]
    verdict = decide(stable, candidate, rules)
    verdict.action            # "promote" | "rollback" | "continue"
    verdict.as_dict()         # the evidence, as stored with the decision

Each signal is turned into a mean per request whose increase is a regression: a 0/1 per
request for the rates, the cost for ``cost_per_request``, "slower than the stable arm's
p95" for ``latency_p95`` (a tail measured as a share, so the same proportion test serves),
and "not a success" among requests with an outcome for ``outcome_success``. For each, the
always-valid interval of :mod:`bounded.releases.stats` on candidate minus stable says:

- *worse*: its low end is above the allowed regression: the candidate is worse than
  allowed, at any look. One such signal rolls the release back.
- *within*: its high end is below the allowed regression: the candidate is no worse than
  allowed. Every signal within promotes.
- otherwise *undecided*, and before ``min_samples`` requests per arm, *collecting*.

Each signal is tested at alpha / (number of signals) (Bonferroni), so the chance that any
of them ever raises a false alarm stays within alpha.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bounded.releases.settings import ReleaseRules, Signal
from bounded.releases.stats import Interval, Summary, difference


@dataclass(frozen=True, slots=True)
class Sample:
    """One request of one arm, as the ledger tells it."""

    error: bool = False
    validation_failed: bool = False
    guard_hit: bool = False
    latency_ms: float = 0.0
    cost: float = 0.0
    success: bool | None = None  # None: no outcome recorded for it


@dataclass(frozen=True, slots=True)
class SignalResult:
    signal: Signal
    state: str  # collecting | undecided | worse | within
    stable: float
    candidate: float
    n_stable: int
    n_candidate: int
    margin: float  # the regression allowed, in the units of the interval
    interval: Interval | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "state": self.state,
            "stable": self.stable,
            "candidate": self.candidate,
            "n_stable": self.n_stable,
            "n_candidate": self.n_candidate,
            "margin": self.margin,
            "interval": None if self.interval is None else self.interval.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str  # promote | rollback | continue
    reason: str
    signals: tuple[SignalResult, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "signals": [s.as_dict() for s in self.signals],
        }


def decide(stable: Sequence[Sample], candidate: Sequence[Sample], rules: ReleaseRules) -> Verdict:
    alpha = rules.alpha / len(rules.signals)
    results = tuple(_signal(s, stable, candidate, rules, alpha) for s in rules.signals)
    worse = [r for r in results if r.state == "worse"]
    if worse:
        names = ", ".join(r.signal for r in worse)
        if rules.auto_rollback:
            return Verdict("rollback", f"worse than allowed: {names}", results)
        return Verdict("continue", f"worse than allowed: {names} (auto_rollback off)", results)
    if all(r.state == "within" for r in results):
        if rules.auto_promote:
            return Verdict("promote", "every signal within its allowed regression", results)
        return Verdict("continue", "every signal within (auto_promote off)", results)
    collecting = [r for r in results if r.state == "collecting"]
    if collecting:
        short = max(rules.min_samples - min(r.n_stable, r.n_candidate) for r in collecting)
        return Verdict("continue", f"collecting: {short} more requests per arm", results)
    names = ", ".join(r.signal for r in results if r.state == "undecided")
    return Verdict("continue", f"undecided: {names}", results)


def _signal(
    signal: Signal,
    stable: Sequence[Sample],
    candidate: Sequence[Sample],
    rules: ReleaseRules,
    alpha: float,
) -> SignalResult:
    margin = rules.margin(signal)
    if signal == "latency_p95":
        threshold = _quantile([s.latency_ms for s in stable], 0.95)
        s_vals = [float(x.latency_ms > threshold) for x in stable]
        c_vals = [float(x.latency_ms > threshold) for x in candidate]
        shown = (_quantile([x.latency_ms for x in stable], 0.95), _p95(candidate))
        return _compare(signal, s_vals, c_vals, margin, rules, alpha, shown, binary=True)
    if signal == "cost_per_request":
        s_vals = [x.cost for x in stable]
        c_vals = [x.cost for x in candidate]
        base = sum(s_vals) / len(s_vals) if s_vals else 0.0
        # Relative margin: ten per cent of the stable arm's mean cost (a tiny floor keeps
        # free models, whose costs are all zero, from dividing by zero).
        absolute = max(margin * base, 1e-12)
        return _compare(signal, s_vals, c_vals, absolute, rules, alpha, None, binary=False)
    pick = _RATES[signal]
    if signal == "outcome_success":
        s_vals = [float(not x.success) for x in stable if x.success is not None]
        c_vals = [float(not x.success) for x in candidate if x.success is not None]
        s_mean = 1 - sum(s_vals) / len(s_vals) if s_vals else 0.0
        c_mean = 1 - sum(c_vals) / len(c_vals) if c_vals else 0.0
        return _compare(signal, s_vals, c_vals, margin, rules, alpha, (s_mean, c_mean), True)
    s_vals = [float(pick(x)) for x in stable]
    c_vals = [float(pick(x)) for x in candidate]
    return _compare(signal, s_vals, c_vals, margin, rules, alpha, None, binary=True)


_RATES: dict[str, Callable[[Sample], bool]] = {
    "error_rate": lambda s: s.error,
    "validation_failures": lambda s: s.validation_failed,
    "guard_hits": lambda s: s.guard_hit,
    "outcome_success": lambda s: bool(s.success),
}


def _compare(
    signal: Signal,
    s_vals: list[float],
    c_vals: list[float],
    margin: float,
    rules: ReleaseRules,
    alpha: float,
    shown: tuple[float, float] | None,
    binary: bool,
) -> SignalResult:
    s, c = Summary.of(s_vals, binary=binary), Summary.of(c_vals, binary=binary)
    stable_shown, cand_shown = shown if shown is not None else (s.mean, c.mean)
    if min(s.n, c.n) < rules.min_samples:
        return SignalResult(signal, "collecting", stable_shown, cand_shown, s.n, c.n, margin, None)
    interval = difference(s, c, alpha=alpha, scale=margin)
    if interval.low > margin:
        state = "worse"
    elif interval.high < margin:
        state = "within"
    else:
        state = "undecided"
    return SignalResult(signal, state, stable_shown, cand_shown, s.n, c.n, margin, interval)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _p95(samples: Sequence[Sample]) -> float:
    return _quantile([x.latency_ms for x in samples], 0.95)
