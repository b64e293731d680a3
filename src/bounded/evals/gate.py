"""The gate: does a run pass? Exit 0 when it does, 100 when it does not (promptfoo's code).

Rules, all that apply must hold:

- pass rate: ``PROMPTFOO_PASS_RATE_THRESHOLD`` (a percentage, as promptfoo reads it) if
  set, else the feature's ``eval.min_pass_rate`` in bounded.yaml, else every case passes
  (promptfoo's default);
- ``eval.max_regression`` against a baseline run, compared case by case: which cases newly
  fail and which newly pass. Judged assertions were graded ``--repeat`` times; the pass
  rate's spread across those repeats is judge noise, so the drop counts only beyond it;
- ``eval.max_cost_usd`` (the whole run) and ``eval.max_latency_ms`` (p95 of the cases).

``PROMPTFOO_FAILED_TEST_EXIT_CODE`` replaces 100.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bounded.evals.runner import CaseResult
from bounded.evals.settings import EvalGate

FAILED_EXIT = 100


@dataclass(slots=True)
class Stats:
    total: int
    successes: int
    failures: int
    errors: int
    pass_rate: float
    cost: float
    latency_p95_ms: float
    tokens: dict[str, int]
    rate_low: float  # lowest pass rate over the judge repeats
    rate_high: float

    @property
    def spread(self) -> float:
        return self.rate_high - self.rate_low


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]


def stats(results: Sequence[CaseResult]) -> Stats:
    total = len(results)
    errors = sum(1 for r in results if r.error is not None)
    successes = sum(1 for r in results if r.passed)
    tokens = {"total": 0, "prompt": 0, "completion": 0, "cached": 0, "numRequests": 0}
    for r in results:
        for k in ("total", "prompt", "completion", "cached"):
            tokens[k] += int(r.output.tokens.get(k, 0))
        tokens["numRequests"] += 0 if r.provider.echo else 1
    repeats = max((len(r.graded.repeats) for r in results), default=1) or 1
    rates = []
    for i in range(repeats):
        passing = sum(
            1
            for r in results
            if r.error is None and (r.graded.repeats[min(i, len(r.graded.repeats) - 1)]
                                    if r.graded.repeats else r.passed)
        )  # fmt: skip
        rates.append(passing / total if total else 1.0)
    return Stats(
        total,
        successes,
        total - successes - errors,
        errors,
        successes / total if total else 1.0,
        sum(r.output.cost for r in results),
        _p95([r.output.latency_ms for r in results if not r.provider.echo]),
        tokens,
        min(rates),
        max(rates),
    )


@dataclass(slots=True)
class Comparison:
    baseline_id: str
    baseline_rate: float
    current_rate: float  # over the cases both runs have
    newly_failing: list[str] = field(default_factory=list)
    newly_passing: list[str] = field(default_factory=list)
    noisy: list[str] = field(default_factory=list)  # newly failing, but judges disagreed
    only_here: int = 0

    @property
    def regression(self) -> float:
        return self.baseline_rate - self.current_rate


def compare(
    results: Sequence[CaseResult], baseline_id: str, baseline: Mapping[str, bool]
) -> Comparison:
    shared = [r for r in results if r.key() in baseline]
    comp = Comparison(
        baseline_id,
        sum(baseline[r.key()] for r in shared) / len(shared) if shared else 1.0,
        sum(r.passed for r in shared) / len(shared) if shared else 1.0,
        only_here=len(results) - len(shared),
    )
    for r in shared:
        before = baseline[r.key()]
        if before and not r.passed:
            comp.newly_failing.append(r.key())
            if 0 < r.graded.pass_fraction < 1:
                comp.noisy.append(r.key())
        elif r.passed and not before:
            comp.newly_passing.append(r.key())
    return comp


@dataclass(slots=True)
class Verdict:
    passed: bool
    reasons: list[str]
    exit_code: int
    rules: dict[str, Any]


def decide(
    s: Stats,
    comparison: Comparison | None,
    rules: EvalGate | None,
    env: Mapping[str, str] | None = None,
) -> Verdict:
    env = os.environ if env is None else env
    reasons: list[str] = []
    applied: dict[str, Any] = {}
    threshold_env = env.get("PROMPTFOO_PASS_RATE_THRESHOLD", "").strip()
    if threshold_env:
        need = float(threshold_env) / 100
        applied["min_pass_rate"] = {"value": need, "from": "PROMPTFOO_PASS_RATE_THRESHOLD"}
    elif rules is not None:
        need = rules.min_pass_rate
        applied["min_pass_rate"] = {"value": need, "from": "bounded.yaml"}
    else:
        need = 1.0
        applied["min_pass_rate"] = {"value": need, "from": "default (every case passes)"}
    if s.pass_rate + 1e-12 < need:
        reasons.append(f"pass rate {s.pass_rate:.1%} is under {need:.1%}")
    if rules is not None and rules.max_regression is not None and comparison is not None:
        allowed = rules.max_regression + s.spread
        applied["max_regression"] = {"value": rules.max_regression, "judge_spread": s.spread}
        if comparison.regression > allowed + 1e-12:
            reasons.append(
                f"pass rate fell {comparison.regression:.1%} against {comparison.baseline_id} "
                f"(allowed {rules.max_regression:.1%} + judge spread {s.spread:.1%}); newly "
                f"failing: {len(comparison.newly_failing)}"
            )
    if rules is not None and rules.max_cost_usd is not None:
        applied["max_cost_usd"] = float(rules.max_cost_usd)
        if s.cost > float(rules.max_cost_usd):
            reasons.append(f"cost ${s.cost:.6f} is over ${float(rules.max_cost_usd):.6f}")
    if rules is not None and rules.max_latency_ms is not None:
        applied["max_latency_ms"] = rules.max_latency_ms
        if s.latency_p95_ms > rules.max_latency_ms:
            reasons.append(
                f"p95 latency {s.latency_p95_ms:.0f} ms is over {rules.max_latency_ms:.0f} ms"
            )
    code = int(env.get("PROMPTFOO_FAILED_TEST_EXIT_CODE", "").strip() or FAILED_EXIT)
    return Verdict(not reasons, reasons, 0 if not reasons else code, applied)
