"""bounded's own failures are never a deployment's fault (issue 9, item 1).

An error raised before the upstream answered (our encoding of the request, our
validation, our own bug) must not count against the deployment's breaker, nor fall back
as if the deployment had failed. Before the fix, eight bodies nested 256 levels deep
opened the breakers of both targets of a route, and an unrelated feature sharing them got
``502 no_healthy_deployment``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bounded.config.schema import BreakerPolicy, ModelConfig, RouteConfig
from bounded.errors import InvalidRequest
from bounded.providers.base import ChatRequest, EmbeddingResult, Json
from bounded.routing.router import Deployment, Router
from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import FaultyUpstream, chat, routed_config

BREAKER = {"window": 4, "min_calls": 2, "failure_rate": 0.5, "cooldown_s": 600}


def test_deep_bodies_never_open_the_breakers_of_a_shared_deployment(
    standin: FaultyUpstream, gateway_factory: Any
) -> None:
    config = routed_config(standin.forget().base_url, {"targets": ["primary", "backup"]})
    config["breaker"] = BREAKER
    config["features"]["other"] = {"owner": "x", "route": {"targets": ["primary", "backup"]}}
    raw = b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "x": '
    raw += b"[" * 300 + b"]" * 300 + b"}"
    with gateway_factory(config) as (url, gateway):
        for _ in range(20):
            r = httpx.post(
                f"{url}/v1/chat/completions",
                content=raw,
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert r.status_code == 400, r.text
        states = {n: b.state.value for n, b in gateway.runtime.router.breakers.items()}
        assert states == {"primary": "closed", "backup": "closed"}
        assert chat(url, model="other").status_code == 200
    assert standin.count("primary") == 1  # only the unrelated feature's request got through


class StandIn:
    """A stand-in provider for fault injection: each call raises what it was given."""

    def __init__(self, name: str, error: BaseException):
        self.name = name
        self.error = error
        self.calls = 0

    async def complete(self, request: ChatRequest) -> Json:
        self.calls += 1
        raise self.error

    async def stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        self.calls += 1
        raise self.error
        yield {}  # an async generator, like a real provider's stream

    async def embed(self, texts: Any, model: str, timeout_s: float, **kw: Any) -> EmbeddingResult:
        self.calls += 1
        raise self.error

    async def aclose(self) -> None:
        return None


def router_over(primary: StandIn, backup: StandIn) -> Router:
    deployments = {
        p.name: Deployment(p.name, ModelConfig(provider="p", model=p.name), p)  # type: ignore[arg-type]
        for p in (primary, backup)
    }
    return Router(deployments, BreakerPolicy(window=4, min_calls=2, cooldown_s=600))


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequest("request cannot be encoded for the upstream", code="unencodable_request"),
        ValueError("a bug in bounded's request translation"),
        RecursionError("maximum recursion depth exceeded"),
    ],
    ids=["encoding", "bug", "recursion"],
)
@pytest.mark.parametrize("how", ["complete", "stream", "embed"])
async def test_our_own_failure_is_no_verdict_and_no_fallback(
    error: BaseException, how: str
) -> None:
    primary, backup = StandIn("primary", error), StandIn("backup", error)
    router = router_over(primary, backup)
    route = RouteConfig(targets=("primary", "backup"))
    for _ in range(10):
        with pytest.raises(type(error)):
            if how == "complete":
                await router.complete(route, {"model": "chat", "messages": []})
            elif how == "stream":
                routed = await router.stream(route, {"model": "chat", "messages": []})
                async for _chunk in routed.chunks:
                    pass
            else:
                await router.embed(route, ["text"])
    assert (primary.calls, backup.calls) == (10, 0)  # tried once each time, never retried
    assert router.breakers["primary"].state.value == "closed"
    assert router.breakers["primary"].snapshot()["calls"] == 0
