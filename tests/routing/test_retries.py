"""Retries on the same deployment: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

import random
import time

import pytest

from bounded.config.schema import BreakerPolicy, ModelConfig, ProviderConfig, RouteConfig
from bounded.errors import Unavailable
from bounded.providers.openai import OpenAIProvider
from bounded.routing.router import Deployment, Router
from tests.standins.faulty_upstream import (
    FaultyUpstream,
    chat,
    ok,
    rate_limited,
    routed_config,
    status,
)

FAST_RETRY = {"attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.02}


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    return standin.forget()


def test_a_500_is_retried_on_the_same_deployment(upstream, gateway_factory):
    upstream.script("primary", status(500), ok("second time lucky"))
    route = {"targets": ["primary", "backup"], "retry": FAST_RETRY}
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        r = chat(url)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "second time lucky"
    assert r.json()["model"] == "chat"
    assert r.headers["x-bounded-route"] == "primary"
    assert r.headers["x-bounded-attempts"] == "2"
    assert (upstream.count("primary"), upstream.count("backup")) == (2, 0)


def test_retry_after_is_waited_out_before_the_retry(upstream, gateway_factory):
    upstream.script("primary", rate_limited(retry_after_s=1), ok())
    route = {"targets": ["primary", "backup"], "retry": FAST_RETRY}
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        started = time.monotonic()
        r = chat(url)
        elapsed = time.monotonic() - started
    assert r.status_code == 200
    assert r.headers["x-bounded-route"] == "primary"
    assert r.headers["x-bounded-attempts"] == "2"
    assert elapsed >= 1.0
    first, second = upstream.times("primary")
    assert second - first >= 0.98  # the event loop's timers have millisecond granularity
    assert upstream.count("backup") == 0


def test_retry_after_beyond_the_cap_falls_back_instead_of_waiting(upstream, gateway_factory):
    upstream.script("primary", rate_limited(retry_after_s=5))
    upstream.always("backup", ok("from backup"))
    route = {"targets": ["primary", "backup"], "retry": {**FAST_RETRY, "max_retry_after_s": 0.5}}
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        started = time.monotonic()
        r = chat(url)
        elapsed = time.monotonic() - started
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "from backup"
    assert r.headers["x-bounded-route"] == "backup"
    assert elapsed < 4.0  # did not wait out the 5 s (a busy machine only adds to the answer)
    assert (upstream.count("primary"), upstream.count("backup")) == (1, 1)


def test_a_rate_limit_with_nowhere_to_go_reaches_the_client_as_a_429(upstream, gateway_factory):
    upstream.always("primary", rate_limited(retry_after_s=3))
    route = {"targets": ["primary"], "retry": {**FAST_RETRY, "max_retry_after_s": 1}}
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        r = chat(url)
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert r.json()["error"]["code"] == "rate_limit"
    assert r.headers["retry-after"] == "3"
    assert upstream.count("primary") == 1


def test_retries_are_bounded_by_attempts(upstream, gateway_factory):
    upstream.always("primary", status(503))
    route = {"targets": ["primary"], "retry": {**FAST_RETRY, "attempts": 3}}
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        r = chat(url)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "unavailable"
    assert "upstream 503" in r.json()["error"]["message"]
    assert upstream.count("primary") == 3


async def test_full_jitter_backoff_stays_within_its_cap(upstream):
    """Each wait is uniform in [0, min(max, base * 2**n)]: spread out, never over the cap."""
    upstream.always("primary", status(503))
    provider = OpenAIProvider("up", ProviderConfig(kind="openai", base_url=upstream.base_url))
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    deployment = Deployment("primary", ModelConfig(provider="up", model="primary"), provider)
    # A window smaller than min_calls never opens: this test is about backoff alone.
    router = Router(
        {"primary": deployment},
        BreakerPolicy(window=1, min_calls=2),
        rng=random.Random(7),
        sleep=record,
    )
    base, cap = 0.05, 0.3
    route = RouteConfig(
        targets=("primary",), retry={"attempts": 10, "backoff_base_s": base, "backoff_max_s": cap}
    )
    try:
        for _ in range(20):
            with pytest.raises(Unavailable):
                await router.complete(route, {"messages": [{"role": "user", "content": "hi"}]})
    finally:
        await provider.aclose()

    assert len(waits) == 20 * 9  # nine waits between ten attempts
    for i, wait in enumerate(waits):
        n = i % 9  # the wait after try n + 1
        assert 0 <= wait <= min(cap, base * 2**n)
    capped = [w for i, w in enumerate(waits) if i % 9 >= 3]  # tries whose bound is the cap
    assert min(capped) < 0.1 * cap and max(capped) > 0.9 * cap
    assert upstream.count("primary") == 200
