"""Circuit breakers: the state machine on its own, then the same transitions through the gateway."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from bounded.config.schema import BreakerPolicy, ModelConfig, ProviderConfig, RouteConfig
from bounded.errors import Unavailable
from bounded.gateway.app import Gateway
from bounded.providers.openai import OpenAIProvider
from bounded.routing.breaker import Breaker, BreakerState
from bounded.routing.router import Deployment, Router
from tests.standins.faulty_upstream import (
    FaultyUpstream,
    Json,
    chat,
    hang,
    ok,
    routed_config,
    status,
)

# -- the state machine, on an injected clock ----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


POLICY = BreakerPolicy(window=4, min_calls=2, failure_rate=0.5, cooldown_s=10)


def tripped() -> tuple[Breaker, Clock]:
    clock = Clock()
    breaker = Breaker(POLICY, clock)
    breaker.record(ok=False)
    breaker.record(ok=False)
    return breaker, clock


def test_it_opens_only_once_enough_calls_fail():
    lone = Breaker(POLICY, Clock())
    lone.record(ok=False)
    assert lone.state is BreakerState.CLOSED  # one call is below min_calls

    breaker = Breaker(POLICY, Clock())
    for outcome in (True, True, False):
        breaker.record(ok=outcome)
    assert breaker.state is BreakerState.CLOSED  # 1 failure in 3 is under the rate
    assert breaker.allow()
    breaker.record(ok=False)
    assert breaker.state is BreakerState.OPEN  # 2 in 4 reaches it
    assert not breaker.allow()


def test_after_cooldown_exactly_one_probe_goes_through():
    breaker, clock = tripped()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()


def test_a_successful_probe_closes_it_with_a_clean_window():
    breaker, clock = tripped()
    clock.now += 10
    assert breaker.allow()
    breaker.record(ok=True)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["calls"] == 0
    breaker.record(ok=False)
    assert breaker.state is BreakerState.CLOSED  # old failures do not count again


def test_a_failed_probe_opens_it_for_another_cooldown():
    breaker, clock = tripped()
    clock.now += 10
    assert breaker.allow()
    breaker.record(ok=False)
    assert breaker.state is BreakerState.OPEN
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_a_released_probe_frees_the_slot_for_the_next_call():
    breaker, clock = tripped()
    clock.now += 10
    assert breaker.allow()
    breaker.release()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_a_probe_lost_without_a_verdict_lapses_after_a_cooldown():
    breaker, clock = tripped()
    clock.now += 10
    assert breaker.allow()  # ... and its owner never reports back
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


# -- through the gateway ------------------------------------------------------------------------
#
# Each breaker below runs on a Clock the test moves (see `on_clock`): a cooldown passes when
# the test says so, never because a loaded machine was slow between two requests.

COOLDOWN = 10.0
BREAKER = {"window": 4, "min_calls": 2, "failure_rate": 0.5, "cooldown_s": COOLDOWN}
ROUTE = {"targets": ["primary", "backup"], "retry": {"attempts": 1}, "timeout_s": 30}
PATIENCE_S = 30  # the longest a test polls for a state it waits on


def on_clock(breakers: dict[str, Breaker], name: str) -> Clock:
    """Replace deployment ``name``'s breaker (still untouched) with one on a test clock."""
    clock = Clock()
    breakers[name] = Breaker(breakers[name].policy, clock)
    return clock


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting, after {PATIENCE_S}s, for {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget().always("backup", ok("from backup"))
    return standin


def runtime_breakers(gateway: Gateway) -> dict[str, Breaker]:
    return gateway.runtime.router.breakers


def breaker_of(url: str, name: str) -> dict[str, object]:
    breakers: dict[str, dict[str, object]] = httpx.get(f"{url}/readyz").json()["breakers"]
    return breakers[name]


def test_breaker_lifecycle_end_to_end(upstream, gateway_factory):
    upstream.always("primary", status(503))
    config = routed_config(upstream.base_url, ROUTE, breaker=BREAKER)
    with gateway_factory(config) as (url, gateway):
        clock = on_clock(runtime_breakers(gateway), "primary")
        for _ in range(2):
            assert chat(url).headers["x-bounded-route"] == "backup"
        assert breaker_of(url, "primary")["state"] == "open"
        assert upstream.count("primary") == 2

        # Open: the primary is not even tried.
        for _ in range(3):
            r = chat(url)
            assert r.headers["x-bounded-route"] == "backup"
            assert r.headers["x-bounded-attempts"] == "1"
        assert upstream.count("primary") == 2

        # After the cooldown one probe goes through; its success closes the breaker.
        clock.now += COOLDOWN
        assert breaker_of(url, "primary")["state"] == "half-open"
        upstream.always("primary", ok("primary is back"))
        r = chat(url)
        assert r.headers["x-bounded-route"] == "primary"
        assert breaker_of(url, "primary") == {
            "state": "closed",
            "calls": 0,
            "failure_rate": 0.0,
            "probe_in_flight": False,
        }

        # Trip it again; this time the probe fails and it opens for another cooldown.
        upstream.always("primary", status(503))
        chat(url)
        chat(url)
        assert breaker_of(url, "primary")["state"] == "open"
        clock.now += COOLDOWN
        before = upstream.count("primary")
        assert chat(url).headers["x-bounded-route"] == "backup"
        assert upstream.count("primary") == before + 1  # the probe
        assert breaker_of(url, "primary")["state"] == "open"
        assert chat(url).headers["x-bounded-route"] == "backup"
        assert upstream.count("primary") == before + 1


def test_only_one_of_several_concurrent_requests_is_the_probe(upstream, gateway_factory):
    upstream.always("primary", status(503))
    # The cooldown is also how long a probe may stay out; on the test clock it never runs out
    # while the threads arrive, however slowly they start.
    route = {**ROUTE, "timeout_s": 2 * PATIENCE_S}  # the probe is held open while they do
    with gateway_factory(routed_config(upstream.base_url, route, breaker=BREAKER)) as (
        url,
        gateway,
    ):
        clock = on_clock(runtime_breakers(gateway), "primary")
        chat(url)
        chat(url)
        clock.now += COOLDOWN
        served = upstream.count("backup") + 3

        async def answer_once_the_others_are_served(request: Request, body: Json) -> Response:
            # Holding the probe open makes the test independent of how fast threads start.
            await until(lambda: upstream.count("backup") >= served, "the other three requests")
            return await ok("primary is back")(request, body)

        upstream.always("primary", answer_once_the_others_are_served)
        routes: list[str] = []

        def one() -> None:
            routes.append(chat(url, timeout=3 * PATIENCE_S).headers["x-bounded-route"])

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(routes) == ["backup", "backup", "backup", "primary"]
        assert upstream.count("primary") == 3
        assert breaker_of(url, "primary")["state"] == "closed"


def test_all_breakers_open_is_a_clear_upstream_error_not_a_500(upstream, gateway_factory):
    upstream.always("primary", status(503))
    upstream.always("backup", status(503))
    breaker = {**BREAKER, "min_calls": 1, "cooldown_s": 30}
    with gateway_factory(routed_config(upstream.base_url, ROUTE, breaker=breaker)) as (url, _):
        first = chat(url)
        second = chat(url)
    assert first.status_code == 502
    assert second.status_code == 502
    error = second.json()["error"]
    assert error["code"] == "no_healthy_deployment"
    assert "primary: breaker open" in error["message"]
    assert "backup: breaker open" in error["message"]
    assert (upstream.count("primary"), upstream.count("backup")) == (1, 1)


async def test_a_cancelled_probe_gives_its_slot_back(upstream):
    """A client that hangs up mid-probe must not leave the breaker waiting on it for good."""
    provider = OpenAIProvider("up", ProviderConfig(kind="openai", base_url=upstream.base_url))
    deployment = Deployment("primary", ModelConfig(provider="up", model="primary"), provider)
    router = Router(
        {"primary": deployment}, BreakerPolicy(window=1, min_calls=1, cooldown_s=COOLDOWN)
    )
    route = RouteConfig(targets=("primary",), retry={"attempts": 1})
    body = {"messages": [{"role": "user", "content": "hi"}]}
    clock = on_clock(router.breakers, "primary")
    breaker = router.breakers["primary"]
    try:
        upstream.script("primary", status(503), hang(10))
        with pytest.raises(Unavailable):
            await router.complete(route, body)
        clock.now += COOLDOWN
        probe = asyncio.create_task(router.complete(route, body))
        await until(lambda: upstream.count("primary") >= 2, "the probe to reach the upstream")
        assert breaker.snapshot()["probe_in_flight"]
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        # The test clock stands still, so a lost probe can never lapse here: only the release
        # lets this call be the next probe.
        response, trace = await router.complete(route, body)
    finally:
        await provider.aclose()
    assert trace.deployment == "primary"
    assert response["choices"][0]["message"]["content"] == "hello from the stand-in"
    assert breaker.state is BreakerState.CLOSED
