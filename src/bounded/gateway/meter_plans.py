"""What admission derives from the config alone, built once per config, not per request.

    plan = plans.plan(call)            # the feature's and team's rules, the route's prices
    budgets, rates = plans.key_rules(call.principal)   # a virtual key's own limits

A plan only changes with the config, so plans are kept until the config object changes
(a reload), by feature, team and route; a release may give a feature another route for
some requests, so the route is part of the key (by identity, and kept so that its id is
not reused while cached).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bounded.config.schema import BoundedConfig, ModelConfig, Price, RouteConfig
from bounded.economics.prices import price_for
from bounded.economics.rules import BudgetRule, RateRule, budget_rules, key_rules, rate_rules

if TYPE_CHECKING:
    from bounded.gateway.auth import Principal
    from bounded.gateway.call import Call


@dataclass(frozen=True, slots=True)
class Plan:
    """What admission needs for one feature, team and route."""

    route: RouteConfig  # kept so that its id is not reused while cached
    budgets: list[BudgetRule]
    rates: list[RateRule]
    models: list[ModelConfig]
    prices: list[Price]
    # Some deployment has its own rate limit (checked per attempt, by the router's gate).
    deployment_limited: bool
    # The model a chat prompt is counted for when the route has one deployment and its
    # provider does not count prompts itself (the usual case): then it is counted inline.
    estimated_for: str | None


class Plans:
    def __init__(self) -> None:
        self._config: BoundedConfig | None = None
        self._plans: dict[tuple[str, str | None, int], Plan] = {}
        self._prices: dict[int, tuple[ModelConfig, Price]] = {}
        # A virtual key's own rules, by key id, each kept with the limits it was made from
        # (a key read again from the store brings a new dict, and new rules).
        self._keys: dict[str, tuple[dict[str, Any], list[BudgetRule], list[RateRule]]] = {}

    def plan(self, call: Call) -> Plan:
        config = call.runtime.config
        if config is not self._config:
            self._config = config
            self._plans.clear()
            self._prices.clear()
        route = call.target.route
        cache_key = (call.target.name, call.team, id(route))
        found = self._plans.get(cache_key)
        if found is not None and found.route is route:
            return found
        budgets: list[BudgetRule] = []
        rates: list[RateRule] = []
        feature = call.target.feature
        if feature is not None:
            budgets += budget_rules(f"feature:{call.target.name}", feature.budget)
            rates += rate_rules(f"feature:{call.target.name}", feature.rate_limit)
        team = config.teams.get(call.team or "")
        if team is not None:
            budgets += budget_rules(f"team:{call.team}", team.budget)
            rates += rate_rules(f"team:{call.team}", team.rate_limit)
        models = [config.models[name] for name in route.targets]
        only = models[0] if len(models) == 1 else None
        estimated = only is not None and not counts_exactly(call.runtime.providers[only.provider])
        found = Plan(
            route,
            budgets,
            rates,
            models,
            [self.price(m) for m in models],
            any(m.rate_limit for m in models),
            only.model if only is not None and estimated else None,
        )
        if len(self._plans) >= 256:  # releases handing out many routes: start again
            self._plans.clear()
        self._plans[cache_key] = found
        return found

    def price(self, model: ModelConfig) -> Price:
        # By identity, each kept with its model so that an id is never reused while cached.
        found = self._prices.get(id(model))
        if found is not None and found[0] is model:
            return found[1]
        price = price_for(model.model, model.price).price
        self._prices[id(model)] = (model, price)
        return price

    def key_rules(self, principal: Principal) -> tuple[list[BudgetRule], list[RateRule]]:
        """The budget and rate limit a virtual key carries itself (``bounded keys create
        --budget-usd ... --rpm ...``); none for a key without limits."""
        limits = principal.limits
        if not limits:
            return [], []
        found = self._keys.get(principal.key_id)
        if found is not None and found[0] is limits:
            return found[1], found[2]
        budgets, rates = key_rules(principal.key_id, limits)
        if len(self._keys) >= 4096:  # many keys in turn: start again
            self._keys.clear()
        self._keys[principal.key_id] = (limits, budgets, rates)
        return budgets, rates


# Provider classes by whether they count prompts themselves (``count_prompt_tokens``):
# asked once per class, since a missing attribute costs an exception inside getattr.
_exact_counters: dict[type, bool] = {}


def counts_exactly(provider: object) -> bool:
    kind = type(provider)
    found = _exact_counters.get(kind)
    if found is None:
        found = _exact_counters[kind] = callable(getattr(kind, "count_prompt_tokens", None))
    return found
