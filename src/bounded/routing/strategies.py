"""Strategies: given a route's targets and their live stats, the order to try them in.

A strategy is a function registered by name; adding one is one decorator.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bounded.config.schema import ModelConfig


@dataclass
class LiveStats:
    """Exponentially weighted moving average of latency per deployment."""

    alpha: float = 0.2

    def __post_init__(self) -> None:
        self.latency_s: dict[str, float] = {}

    def observe(self, deployment: str, seconds: float) -> None:
        old = self.latency_s.get(deployment)
        self.latency_s[deployment] = seconds if old is None else old + self.alpha * (seconds - old)


@dataclass(frozen=True)
class Candidate:
    name: str
    model: ModelConfig


Strategy = Callable[[Sequence[Candidate], LiveStats, random.Random], list[Candidate]]
STRATEGIES: dict[str, Strategy] = {}


def strategy(name: str) -> Callable[[Strategy], Strategy]:
    def register(fn: Strategy) -> Strategy:
        STRATEGIES[name] = fn
        return fn

    return register


@strategy("ordered")
def ordered(targets: Sequence[Candidate], stats: LiveStats, rng: random.Random) -> list[Candidate]:
    """The fallback chain as written."""
    return list(targets)


@strategy("weighted")
def weighted(targets: Sequence[Candidate], stats: LiveStats, rng: random.Random) -> list[Candidate]:
    """Weighted random order without replacement: the first pick follows the weights."""
    pool = list(targets)
    order: list[Candidate] = []
    while pool:
        weights = [max(c.model.weight, 0.0) for c in pool]
        if sum(weights) <= 0:
            order.extend(pool)
            break
        pick = rng.choices(range(len(pool)), weights=weights)[0]
        order.append(pool.pop(pick))
    return order


@strategy("least-latency")
def least_latency(
    targets: Sequence[Candidate], stats: LiveStats, rng: random.Random
) -> list[Candidate]:
    """Lowest EWMA latency first; deployments never measured go first so they get measured."""
    return sorted(targets, key=lambda c: stats.latency_s.get(c.name, -1.0))


@strategy("lowest-cost")
def lowest_cost(
    targets: Sequence[Candidate], stats: LiveStats, rng: random.Random
) -> list[Candidate]:
    """Cheapest blended price (input + output per million tokens) first; ties keep order."""
    return sorted(targets, key=lambda c: _blended_price(c.model))


def _blended_price(model: ModelConfig) -> Decimal:
    from bounded.economics.prices import price_for

    price = price_for(model.model, model.price).price
    return price.input + price.output


@strategy("cascade")
def cascade(targets: Sequence[Candidate], stats: LiveStats, rng: random.Random) -> list[Candidate]:
    """Cheapest first, like lowest-cost; what makes it a cascade is the validate stage,
    which takes the first answer that passes and sends a failing one up to the next."""
    return lowest_cost(targets, stats, rng)
