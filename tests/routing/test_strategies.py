"""Strategies: which deployment a route tries first."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bounded.config.schema import ModelConfig
from bounded.routing.strategies import Candidate, LiveStats, lowest_cost, weighted
from tests.standins.faulty_upstream import FaultyUpstream, chat, hang, ok, routed_config, status


def candidate(name: str, **model: object) -> Candidate:
    return Candidate(name, ModelConfig(provider="up", model=name, **model))  # type: ignore[arg-type]


def test_weighted_first_picks_follow_the_weights():
    targets = [candidate("big", weight=3), candidate("small", weight=1)]
    rng = random.Random(1234)
    orders = [weighted(targets, LiveStats(), rng) for _ in range(2000)]
    firsts = Counter(order[0].name for order in orders)
    assert 0.72 <= firsts["big"] / 2000 <= 0.78
    # The rest of the order is still there to fall back on.
    assert all(sorted(c.name for c in order) == ["big", "small"] for order in orders)


def test_weighted_never_leads_with_a_zero_weight_while_another_can_serve():
    targets = [candidate("off", weight=0), candidate("on", weight=1)]
    rng = random.Random(5)
    assert {weighted(targets, LiveStats(), rng)[0].name for _ in range(200)} == {"on"}


def test_lowest_cost_orders_by_blended_price():
    targets = [
        candidate("pricey", price={"input": 5, "output": 15}),
        candidate("cheap", price={"input": 0.15, "output": 0.6}),
        candidate("middling", price={"input": 1, "output": 4}),
    ]
    assert [c.name for c in lowest_cost(targets, LiveStats(), random.Random())] == [
        "cheap",
        "middling",
        "pricey",
    ]


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    return standin.forget()


def test_least_latency_prefers_the_faster_upstream_after_warm_up(upstream, gateway_factory):
    upstream.always("slow", ok(delay_s=0.15))
    upstream.always("fast", ok())
    route = {"strategy": "least-latency", "targets": ["slow", "fast"]}
    config = routed_config(upstream.base_url, route, models=("slow", "fast"))
    with gateway_factory(config) as (url, _):
        routes = [chat(url).headers["x-bounded-route"] for _ in range(6)]
    # Unmeasured deployments go first, so each is measured once; then the faster one wins.
    assert sorted(routes[:2]) == ["fast", "slow"]
    assert routes[2:] == ["fast"] * 4
    assert upstream.count("slow") == 1


def test_least_latency_stops_preferring_a_deployment_that_starts_hanging(upstream, gateway_factory):
    upstream.always("a", ok())
    upstream.always("b", ok(delay_s=0.03))
    route = {
        "strategy": "least-latency",
        "targets": ["a", "b"],
        "timeout_s": 0.6,
        "retry": {"attempts": 1},
    }
    config = routed_config(upstream.base_url, route, models=("a", "b"))
    with gateway_factory(config) as (url, _):
        warm = [chat(url).headers["x-bounded-route"] for _ in range(3)]
        upstream.always("a", hang(10))
        assert chat(url).headers["x-bounded-route"] == "b"  # a timed out; b answered
        after = [chat(url).headers["x-bounded-route"] for _ in range(2)]
    assert warm == ["a", "b", "a"]
    assert after == ["b", "b"]
    assert upstream.count("a") == 3  # two answers and one timeout, then no more tries


def test_lowest_cost_sends_traffic_to_the_cheaper_deployment(upstream, gateway_factory):
    upstream.always("cheap", status(503))
    route = {"strategy": "lowest-cost", "targets": ["pricey", "cheap"], "retry": {"attempts": 1}}
    prices = {
        "pricey": {"price": {"input": 10, "output": 30}},
        "cheap": {"price": {"input": 0.1, "output": 0.4}},
    }
    config = routed_config(upstream.base_url, route, models=("pricey", "cheap"), model_extra=prices)
    with gateway_factory(config) as (url, _):
        upstream.script("cheap", ok())
        first = chat(url)
        second = chat(url)  # the cheap one fails now: the dearer one still answers
    assert first.headers["x-bounded-route"] == "cheap"
    assert second.headers["x-bounded-route"] == "pricey"
    assert (upstream.count("cheap"), upstream.count("pricey")) == (2, 1)
