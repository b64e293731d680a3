"""An always-valid comparison of two arms: a confidence sequence for a difference of means.

    s = Summary.of([0, 0, 1, 0])               # stable: 4 requests, 1 failed validation
    c = Summary.of([1, 1, 0, 1])               # candidate
    interval = difference(s, c, alpha=0.05, scale=0.05)
    interval.low > 0                           # the candidate is worse, at any look

The evaluator looks at a release every few seconds, for days. A fixed-sample test read that
often finds a "significant" difference between two identical arms almost surely, sooner or
later; here every look is allowed. The interval is the one the mixture sequential
probability ratio test (mSPRT: Robbins 1970; Johari, Pekelis, Walsh, "Always valid
inference", 2017) inverts: with the normal approximation of each arm's mean, a normal
mixture N(0, scale^2) over the true difference, and V the variance of the estimated
difference, the likelihood ratio is

    L = sqrt(V / (V + scale^2)) * exp(d^2 scale^2 / (2 V (V + scale^2)))

and the probability that L *ever* passes 1/alpha under no difference is at most alpha
(Ville's inequality). The set of differences not rejected is the interval below; it is
valid at every sample size at once, so decisions may be taken whenever it clears a bound.
``scale`` is the effect the test is tuned to find soonest: the release's ``max_regression``.

Means of 0/1 values are proportions (error rate, validation failures, guard hits, outcome
success); the same interval serves means (cost per request). Variances are plug-in
estimates, a proportion's shrunk towards 1/2 by one pseudo-success and one pseudo-failure
so that an arm with no failures yet does not claim zero variance. The normal approximation
is why ``min_samples`` exists: before it no decision is taken. ``bench/sequential_test.py``
measures the false-alarm rate this leaves over 10,000 looks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    """What the test needs of one arm: count, sum and sum of squares of its values."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    binary: bool = False

    @classmethod
    def of(cls, values: Iterable[float], *, binary: bool | None = None) -> Summary:
        n, total, squares, only01 = 0, 0.0, 0.0, True
        for v in values:
            n += 1
            total += v
            squares += v * v
            only01 = only01 and v in (0, 1)
        return cls(n, total, squares, only01 if binary is None else binary)

    @classmethod
    def proportion(cls, successes: int, n: int) -> Summary:
        return cls(n, float(successes), float(successes), True)

    def add(self, value: float) -> Summary:
        return Summary(self.n + 1, self.total + value, self.squares + value * value, self.binary)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Of one value (not of the mean); a proportion's with one pseudo-count each way."""
        if self.binary:
            p = (self.total + 1) / (self.n + 2)
            return p * (1 - p)
        if self.n < 2:
            return 0.0
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence sequence's current interval for ``candidate - stable``."""

    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def half_width(variance: float, alpha: float, scale: float) -> float:
    """Half the width of the mSPRT's always-valid interval, given the estimate's variance."""
    if variance <= 0:
        return 0.0
    tau2 = scale * scale
    ratio = (variance + tau2) / variance
    return math.sqrt(2 * variance * (variance + tau2) / tau2 * math.log(math.sqrt(ratio) / alpha))


def difference(stable: Summary, candidate: Summary, *, alpha: float, scale: float) -> Interval:
    """The always-valid (1 - alpha) interval for the candidate's mean minus the stable's."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, not {scale}")
    if stable.n == 0 or candidate.n == 0:
        return Interval(0.0, -math.inf, math.inf)
    estimate = candidate.mean - stable.mean
    variance = stable.variance / stable.n + candidate.variance / candidate.n
    if variance <= 0:
        # Two constant arms (say, the same cost on every call): no noise to allow for.
        return Interval(estimate, estimate, estimate)
    h = half_width(variance, alpha, scale)
    return Interval(estimate, estimate - h, estimate + h)


def log_likelihood_ratio(stable: Summary, candidate: Summary, scale: float) -> float:
    """log L of the mSPRT against "no difference" (reported as evidence; >= log(1/alpha)
    is the same event as the interval excluding 0)."""
    if stable.n == 0 or candidate.n == 0:
        return 0.0
    d = candidate.mean - stable.mean
    v = stable.variance / stable.n + candidate.variance / candidate.n
    if v <= 0:
        return 0.0 if d == 0 else math.inf
    tau2 = scale * scale
    return 0.5 * math.log(v / (v + tau2)) + d * d * tau2 / (2 * v * (v + tau2))
