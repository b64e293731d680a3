"""Which budgets and rate limits apply to one request, gathered from config and the key.

Scopes are strings ``key:<id>``, ``team:<name>``, ``feature:<name>``, ``deployment:<name>``;
every applicable budget and limit must pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bounded.config.schema import BudgetConfig, RateLimitConfig


@dataclass(frozen=True, slots=True)
class BudgetRule:
    scope: str
    amount: Decimal
    period: str
    mode: str  # hard | soft

    @property
    def label(self) -> str:
        return f"{self.mode} {self.period} budget of ${self.amount} for {self.scope}"


@dataclass(frozen=True, slots=True)
class RateRule:
    scope: str
    rpm: int | None
    tpm: int | None


def budget_rules(
    scope: str, budget: BudgetConfig | tuple[BudgetConfig, ...] | None
) -> list[BudgetRule]:
    if budget is None:
        return []
    budgets = budget if isinstance(budget, tuple) else (budget,)
    return [BudgetRule(scope, b.amount_usd, b.period, b.mode) for b in budgets]


def rate_rules(scope: str, limit: RateLimitConfig | None) -> list[RateRule]:
    if limit is None or (limit.rpm is None and limit.tpm is None):
        return []
    return [RateRule(scope, limit.rpm, limit.tpm)]


def key_rules(
    key_id: str, limits: dict[str, Any] | None
) -> tuple[list[BudgetRule], list[RateRule]]:
    """A virtual key's own limits, as stored by ``bounded keys create --budget-usd ...``."""
    if not limits:
        return [], []
    scope = f"key:{key_id}"
    budget = limits.get("budget")
    rate = limits.get("rate_limit")
    budgets = (
        [
            BudgetRule(
                scope,
                Decimal(str(budget["amount_usd"])),
                budget.get("period", "month"),
                budget.get("mode", "hard"),
            )
        ]
        if budget
        else []
    )
    rates = [RateRule(scope, rate.get("rpm"), rate.get("tpm"))] if rate else []
    return budgets, rates
