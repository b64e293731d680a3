"""The always-valid interval: it keeps its level under repeated looks, and still finds a
real regression; the decision rules on top of it."""

from __future__ import annotations

import math
import random

import pytest

from bounded.releases.decide import Sample, decide
from bounded.releases.settings import ReleaseRules
from bounded.releases.stats import Summary, difference, log_likelihood_ratio

ALPHA = 0.05


def _ever_rejects(rng: random.Random, p_s: float, p_c: float, looks: int, scale: float) -> int:
    """The look (candidate samples) at which the interval first left 0, or 0 for never."""
    s = c = Summary(binary=True)
    for t in range(1, looks + 1):
        s = s.add(float(rng.random() < p_s))
        c = c.add(float(rng.random() < p_c))
        if t < 30:
            continue
        interval = difference(s, c, alpha=ALPHA, scale=scale)
        if interval.low > 0 or interval.high < 0:
            return t
    return 0


def test_repeated_looks_under_no_difference_keep_the_false_alarm_rate_within_alpha() -> None:
    rng = random.Random(11)
    runs, looks = 200, 400
    alarms = sum(bool(_ever_rejects(rng, 0.2, 0.2, looks, 0.05)) for _ in range(runs))
    # alpha is 0.05; 200 runs: allow two standard errors of sampling noise over it.
    assert alarms / runs <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / runs)


def test_a_fixed_sample_test_read_at_every_look_would_not() -> None:
    """The same data through a z-test read at every look: the inflation the test avoids
    (if this passed at alpha, the simulation above would prove nothing)."""
    rng = random.Random(11)
    alarms = 0
    for _ in range(200):
        s = c = Summary(binary=True)
        for t in range(1, 401):
            s = s.add(float(rng.random() < 0.2))
            c = c.add(float(rng.random() < 0.2))
            sd = math.sqrt(s.variance / s.n + c.variance / c.n)
            if t >= 30 and abs(c.mean - s.mean) > 1.96 * sd:
                alarms += 1
                break
    assert alarms / 200 > 2 * ALPHA


def test_a_real_regression_is_found_in_a_few_hundred_requests() -> None:
    rng = random.Random(5)
    found = [_ever_rejects(rng, 0.1, 0.3, 400, 0.05) for _ in range(50)]
    assert sum(1 for f in found if f) >= 48
    assert sorted(found)[25] < 200


def test_means_keep_their_level_too() -> None:
    rng = random.Random(3)
    alarms = 0
    for _ in range(100):
        s = c = Summary()
        for t in range(1, 301):
            s = s.add(rng.lognormvariate(0, 0.8))
            c = c.add(rng.lognormvariate(0, 0.8))
            if t >= 30:
                i = difference(s, c, alpha=ALPHA, scale=0.1)
                if i.low > 0 or i.high < 0:
                    alarms += 1
                    break
    assert alarms / 100 <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / 100)


def test_the_interval_and_the_likelihood_ratio_agree() -> None:
    """Two ways of writing the mSPRT: the interval excludes 0 exactly when the mixture
    likelihood ratio passes 1/alpha."""
    rng = random.Random(9)
    for _ in range(300):
        n_s, n_c = rng.randint(20, 2000), rng.randint(20, 2000)
        s = Summary.proportion(rng.randint(0, n_s), n_s)
        c = Summary.proportion(rng.randint(0, n_c), n_c)
        i = difference(s, c, alpha=ALPHA, scale=0.05)
        excludes = i.low > 0 or i.high < 0
        assert excludes == (log_likelihood_ratio(s, c, 0.05) >= math.log(1 / ALPHA))


def test_an_arm_with_no_failures_yet_does_not_claim_certainty() -> None:
    s = Summary.proportion(0, 40)
    c = Summary.proportion(1, 40)
    i = difference(s, c, alpha=ALPHA, scale=0.05)
    assert i.low < 0 < i.high


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        difference(Summary.proportion(1, 10), Summary.proportion(1, 10), alpha=1.5, scale=0.1)
    with pytest.raises(ValueError, match="scale"):
        difference(Summary.proportion(1, 10), Summary.proportion(1, 10), alpha=0.05, scale=0)


def _arm(n: int, every: int) -> list[Sample]:
    """n requests, every ``every``-th one failing validation (0: none)."""
    return [Sample(validation_failed=bool(every) and i % every == 0, cost=0.01) for i in range(n)]


RULES = ReleaseRules(signals=("validation_failures",), max_regression=0.05, min_samples=50)


def test_decide_rolls_back_a_worse_candidate() -> None:
    verdict = decide(_arm(300, 20), _arm(300, 3), RULES)
    assert verdict.action == "rollback"
    assert "validation_failures" in verdict.reason
    assert verdict.signals[0].state == "worse"


def test_decide_promotes_a_candidate_no_worse_than_allowed() -> None:
    verdict = decide(_arm(400, 10), _arm(400, 0), RULES)
    assert verdict.action == "promote"


def test_decide_waits_for_min_samples_even_on_a_clear_difference() -> None:
    verdict = decide(_arm(49, 20), _arm(49, 2), RULES)
    assert verdict.action == "continue"
    assert verdict.reason.startswith("collecting: 1 more")


def test_decide_keeps_watching_a_difference_within_noise() -> None:
    verdict = decide(_arm(200, 10), _arm(200, 8), RULES)
    assert verdict.action == "continue"
    assert verdict.signals[0].state == "undecided"


def test_margins_per_signal_must_cover_every_signal() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        ReleaseRules(
            signals=("error_rate", "cost_per_request"), max_regression={"cost_per_request": 0.1}
        )


def test_a_slower_tail_is_worse_on_latency_p95_though_the_median_is_the_same() -> None:
    rng = random.Random(2)
    stable = [Sample(latency_ms=rng.uniform(50, 150)) for _ in range(400)]
    # Same median; one candidate request in four is slow.
    candidate = [
        Sample(latency_ms=rng.uniform(50, 150) if i % 4 else rng.uniform(400, 900))
        for i in range(400)
    ]
    rules = ReleaseRules(signals=("latency_p95",), max_regression=0.05, min_samples=50)
    verdict = decide(stable, candidate, rules)
    assert verdict.action == "rollback"
    assert verdict.signals[0].candidate > 3 * verdict.signals[0].stable  # p95s shown


def test_cost_per_request_margin_is_relative_to_the_stable_cost() -> None:
    rules = ReleaseRules(signals=("cost_per_request",), max_regression=0.1, min_samples=50)
    rng = random.Random(4)
    stable = [Sample(cost=rng.uniform(0.009, 0.011)) for _ in range(300)]
    dearer = [Sample(cost=rng.uniform(0.0117, 0.0143)) for _ in range(300)]  # +30 %
    cheaper = [Sample(cost=rng.uniform(0.0081, 0.0099)) for _ in range(300)]  # -10 %
    assert decide(stable, dearer, rules).action == "rollback"
    assert decide(stable, cheaper, rules).action == "promote"


def test_outcome_success_counts_only_requests_with_an_outcome() -> None:
    rules = ReleaseRules(signals=("outcome_success",), max_regression=0.05, min_samples=50)
    stable = [Sample(success=i % 10 != 0) for i in range(200)] + [Sample()] * 500
    candidate = [Sample(success=i % 2 == 0) for i in range(200)]
    verdict = decide(stable, candidate, rules)
    assert verdict.action == "rollback"
    result = verdict.signals[0]
    assert (result.n_stable, result.n_candidate) == (200, 200)
    assert result.stable == pytest.approx(0.9) and result.candidate == pytest.approx(0.5)
