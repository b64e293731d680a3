"""The release test in simulation: false alarms under no difference, samples to decide.

    .venv/bin/python bench/sequential_test.py [--runs 2000] [--looks 10000] [--seed 7]

Each run is one release looked at ``--looks`` times; every look adds requests to both arms
(balanced, or a 10 % canary: 9 stable and 1 candidate per look) and asks the rule whether
to decide. Figures, for alpha = 0.05 (confidence 0.95), with min_samples = 100:

- false alarms: the share of runs in which two *identical* arms were ever declared
  different over all the looks, for the always-valid interval of ``bounded.releases.stats``
  (margin 0: the strictest reading, "the interval ever left 0"; and the shipped rule with
  margin 0.02: "ever rolled back") beside a fixed-sample z-test read at every look (what a
  dashboard with a p-value does). Target: at most alpha.
- samples to decide: at a 5-point regression (10 % -> 15 % validation failures), the
  median and 90th percentile of candidate requests before rollback, and the share of runs
  decided within the looks; and at a mean (cost) regression of 5 %.

The intervals are computed vectorised over runs; a sample of them is checked against the
scalar ``bounded.releases.stats.difference`` the gateway uses, so the figures are of that
code. The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

from bounded.releases.stats import Summary, difference

ALPHA = 0.05
MIN_SAMPLES = 100
Z95 = 1.959963984540054


def intervals(
    s_sum: np.ndarray,
    s_sq: np.ndarray,
    n_s: np.ndarray,
    c_sum: np.ndarray,
    c_sq: np.ndarray,
    n_c: np.ndarray,
    binary: bool,
    scale: float,
    alpha: float = ALPHA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, the mSPRT's always-valid low and high ends (as stats.difference), and the
    estimate's standard error (for the fixed-sample z-test beside it)."""
    if binary:
        ps, pc = (s_sum + 1) / (n_s + 2), (c_sum + 1) / (n_c + 2)
        vs, vc = ps * (1 - ps), pc * (1 - pc)
    else:
        vs = np.maximum(0.0, (s_sq - s_sum * s_sum / n_s) / np.maximum(n_s - 1, 1))
        vc = np.maximum(0.0, (c_sq - c_sum * c_sum / n_c) / np.maximum(n_c - 1, 1))
    v = vs / n_s + vc / n_c
    est = c_sum / n_c - s_sum / n_s
    tau2 = scale * scale
    with np.errstate(divide="ignore", invalid="ignore"):  # v = 0 at a first look: no bound
        ratio = (v + tau2) / v
        h = np.sqrt(2 * v * (v + tau2) / tau2 * np.log(np.sqrt(ratio) / alpha))
    h = np.where(np.isfinite(h), h, np.inf)
    return est, est - h, est + h, np.sqrt(v)


def simulate(
    rng: np.random.Generator,
    runs: int,
    looks: int,
    per_look: tuple[int, int],
    draw: Any,
    binary: bool,
    scale: float,
    margin: float,
) -> dict[str, np.ndarray]:
    """First look (candidate samples) at which each rule fired, per run (-1: never)."""
    m_s, m_c = per_look
    out: dict[str, list[np.ndarray]] = {"cs_any": [], "cs_worse": [], "z_any": []}
    chunk = max(1, 2_000_000 // looks)
    checked = False
    for start in range(0, runs, chunk):
        r = min(chunk, runs - start)
        s_raw = draw(rng, "stable", (r, looks, m_s))
        c_raw = draw(rng, "candidate", (r, looks, m_c))
        s, s2 = s_raw.sum(axis=2), (s_raw * s_raw).sum(axis=2)
        c, c2 = c_raw.sum(axis=2), (c_raw * c_raw).sum(axis=2)
        del s_raw, c_raw
        s_sum, c_sum = np.cumsum(s, axis=1), np.cumsum(c, axis=1)
        s_sq, c_sq = np.cumsum(s2, axis=1), np.cumsum(c2, axis=1)
        t = np.arange(1, looks + 1)
        n_s, n_c = (t * m_s)[None, :], (t * m_c)[None, :]
        est, low, high, sd = intervals(s_sum, s_sq, n_s, c_sum, c_sq, n_c, binary, scale)
        if not checked:
            _check_against_scalar(s_sum, s_sq, n_s, c_sum, c_sq, n_c, binary, scale, low, high)
            checked = True
        ready = (n_c >= MIN_SAMPLES) & (n_s >= MIN_SAMPLES)
        fired = {
            "cs_any": ready & ((low > 0) | (high < 0)),
            "cs_worse": ready & (low > margin),
            "z_any": ready & (np.abs(est) > Z95 * np.where(sd > 0, sd, np.inf)),
        }
        for name, hit in fired.items():
            first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
            out[name].append(np.where(first >= 0, (first + 1) * m_c, -1))
    return {k: np.concatenate(v) for k, v in out.items()}


def _check_against_scalar(s_sum, s_sq, n_s, c_sum, c_sq, n_c, binary, scale, low, high) -> None:  # type: ignore[no-untyped-def]
    for look in (MIN_SAMPLES, low.shape[1] // 2, low.shape[1] - 1):
        look = min(look, low.shape[1] - 1)
        a = Summary(int(n_s[0, look]), float(s_sum[0, look]), float(s_sq[0, look]), binary)
        b = Summary(int(n_c[0, look]), float(c_sum[0, look]), float(c_sq[0, look]), binary)
        got = difference(a, b, alpha=ALPHA, scale=scale)
        assert math.isclose(got.low, low[0, look], rel_tol=1e-9, abs_tol=1e-12), (got, look)
        assert math.isclose(got.high, high[0, look], rel_tol=1e-9, abs_tol=1e-12)


def bernoulli(p_stable: float, p_candidate: float) -> Any:
    def draw(rng: np.random.Generator, arm: str, shape: tuple[int, ...]) -> np.ndarray:
        p = p_stable if arm == "stable" else p_candidate
        return (rng.random(shape) < p).astype(np.float64)

    return draw


def lognormal(mean_stable: float, mean_candidate: float, sigma: float = 0.6) -> Any:
    def draw(rng: np.random.Generator, arm: str, shape: tuple[int, ...]) -> np.ndarray:
        mean = mean_stable if arm == "stable" else mean_candidate
        mu = math.log(mean) - sigma * sigma / 2
        return rng.lognormal(mu, sigma, shape)

    return draw


def rate(first: np.ndarray) -> float:
    return float((first >= 0).mean())


def samples(first: np.ndarray) -> dict[str, float | None]:
    hit = first[first >= 0]
    if not hit.size:
        return {"median": None, "p90": None, "decided": 0.0}
    return {
        "median": float(np.median(hit)),
        "p90": float(np.percentile(hit, 90)),
        "decided": float(hit.size / first.size),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--looks", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    figures: dict[str, Any] = {"alpha": ALPHA, "looks": args.looks, "runs": args.runs}
    margin = 0.02
    print(f"alpha {ALPHA}, {args.looks} looks per run, {args.runs} runs, min_samples {MIN_SAMPLES}")
    print("\nfalse alarms under no difference (validation failures 10 % in both arms)")
    for label, per_look in (("balanced", (1, 1)), ("canary 10%", (9, 1))):
        fired = simulate(
            rng, args.runs, args.looks, per_look, bernoulli(0.10, 0.10), True, margin, margin
        )
        row = {k: rate(v) for k, v in fired.items()}
        figures[f"null_{label}"] = row
        print(
            f"  {label:<11} always-valid, ever left 0: {row['cs_any']:.4f}   "
            f"shipped rule, ever rolled back: {row['cs_worse']:.4f}   "
            f"z-test read at every look: {row['z_any']:.4f}"
        )
    fired = simulate(
        rng, args.runs // 4, args.looks, (1, 1), lognormal(0.01, 0.01), False, 5e-4, 5e-4
    )
    row = {k: rate(v) for k, v in fired.items()}
    figures["null_cost_lognormal"] = row
    print(
        f"  cost (lognormal, means equal) always-valid: {row['cs_any']:.4f}   "
        f"z-test at every look: {row['z_any']:.4f}"
    )

    print("\ncandidate requests to roll back a 5-point regression (10 % -> 15 %)")
    for m in (0.0, margin):
        for label, per_look in (("balanced", (1, 1)), ("canary 10%", (9, 1))):
            fired = simulate(
                rng,
                args.runs // 4,
                args.looks,
                per_look,
                bernoulli(0.10, 0.15),
                True,
                max(m, 0.05),
                m,
            )
            got = samples(fired["cs_worse"])
            figures[f"regression5_margin{m}_{label}"] = got
            print(
                f"  max_regression {m:<4} {label:<11} median {got['median']}, "
                f"p90 {got['p90']}, decided in {got['decided']:.1%} of runs"
            )
    fired = simulate(
        rng, args.runs // 4, args.looks, (1, 1), lognormal(0.01, 0.0105), False, 5e-4, 0.0
    )
    got = samples(fired["cs_worse"])
    figures["cost_regression5pct"] = got
    print(f"  cost +5 % (lognormal, sigma 0.6): median {got['median']}, p90 {got['p90']}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
