"""The runtime: everything built from one config, swapped whole on hot reload.

A request takes the current runtime once, at its start, and uses it to the end; a reload
builds a new runtime and swaps the reference, and the old one is closed only after its last
in-flight request finishes. So a reload never drops a request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from bounded.config.schema import BoundedConfig, FeatureConfig, RouteConfig
from bounded.providers.base import Provider
from bounded.providers.registry import build_provider
from bounded.routing.router import Deployment, Router
from bounded.validation.enforce import FeatureGuards

log = logging.getLogger("bounded.runtime")


@dataclass(frozen=True)
class Target:
    """What a request's ``model`` names: a feature, or a model alias used directly."""

    name: str
    route: RouteConfig
    feature: FeatureConfig | None = None

    @property
    def team(self) -> str | None:
        return None if self.feature is None else self.feature.team or self.feature.owner


@dataclass
class Runtime:
    config: BoundedConfig
    providers: dict[str, Provider]
    router: Router
    targets: dict[str, Target]
    embedding_targets: dict[str, Target] = field(default_factory=dict)
    # Features with anything to validate; absent means nothing to check (the fast path).
    guards: dict[str, FeatureGuards] = field(default_factory=dict)
    in_flight: int = 0
    retired: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def build(cls, config: BoundedConfig, previous: Runtime | None = None) -> Runtime:
        providers: dict[str, Provider] = {}
        for name, cfg in config.providers.items():
            # An unchanged provider entry keeps its instance: its connection pool, and for
            # the local kind its loaded model, survive the reload.
            if previous is not None and previous.config.providers.get(name) == cfg:
                providers[name] = previous.providers[name]
            else:
                providers[name] = build_provider(name, cfg)
        deployments = {
            name: Deployment(name, model, providers[model.provider])
            for name, model in config.models.items()
        }
        router = Router(deployments, config.breaker)
        if previous is not None:
            _carry_health(previous, router, config)
        targets: dict[str, Target] = {}
        embedding_targets: dict[str, Target] = {}
        for name, model in config.models.items():
            if model.kind == "chat":
                targets[name] = Target(name, RouteConfig(targets=(name,)))
            else:
                # Routed like a one-target feature: breaker, retries, the model's rate
                # limit. A batch of texts takes longer than a chat turn: a minute by default.
                route = RouteConfig(targets=(name,), timeout_s=model.timeout_s or 60.0)
                embedding_targets[name] = Target(name, route)
        guards: dict[str, FeatureGuards] = {}
        for name, feature in config.features.items():
            targets[name] = Target(name, feature.route, feature)
            built = FeatureGuards.build(feature)
            if not built.empty:
                guards[name] = built
        return cls(config, providers, router, targets, embedding_targets, guards)

    async def close_when_idle(self, successor: Runtime | None = None) -> None:
        """Wait for in-flight requests, then close providers the successor does not reuse."""
        while self.in_flight:
            self.retired.clear()
            await self.retired.wait()
        kept = {id(p) for p in successor.providers.values()} if successor else set()
        for provider in self.providers.values():
            if id(provider) in kept:
                continue
            try:
                await provider.aclose()
            except Exception:  # a provider failing to close must not stop the others
                log.exception("closing provider %s", provider.name)


def _carry_health(previous: Runtime, router: Router, config: BoundedConfig) -> None:
    """Keep breaker state and latency stats for deployments whose config did not change."""
    for name, model in config.models.items():
        old = previous.config.models.get(name)
        if old != model:
            continue
        if previous.config.providers.get(model.provider) != config.providers.get(model.provider):
            continue
        if name in previous.router.breakers:
            router.breakers[name] = previous.router.breakers[name]
        if name in previous.router.stats.latency_s:
            router.stats.latency_s[name] = previous.router.stats.latency_s[name]
