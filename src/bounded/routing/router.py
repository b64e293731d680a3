"""The router: strategy order, retries with full jitter, timeouts, breakers, fallbacks.

For each target the strategy returns (skipping those whose breaker is open), up to
``retry.attempts`` tries are made; a retryable error waits ``uniform(0, min(max, base * 2**n))``
or the upstream's ``retry-after`` when it gives one (one longer than ``max_retry_after_s``
moves on instead of waiting). When a target gives up, the next one is tried only if the
error's kind is in the route's ``fallback_on``. Every attempt's timeout is capped by what is
left of the request's deadline; an attempt cut short by that cap fails as
``deadline_exceeded`` and does not count against the deployment's breaker.

A stream counts as started only at its first token: role-only chunks are held back, and an
error before the first token falls back like any other. After the first token the stream is
committed (the deadline no longer applies, only the per-chunk idle timeout); a later failure
surfaces to the caller, which ends the stream with an error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bounded.config.schema import BreakerPolicy, ModelConfig, RouteConfig
from bounded.errors import ProviderError, RateLimited, Timeout, Unavailable
from bounded.providers.base import ChatRequest, EmbeddingResult, Json, Provider
from bounded.routing.breaker import Breaker
from bounded.routing.strategies import STRATEGIES, Candidate, LiveStats

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
# Checked before every attempt on a deployment (the gateway's own per-deployment rate
# limits); raising RateLimited skips the deployment without calling it, so the route
# falls back to its next target.
Gate = Callable[["Deployment"], Awaitable[None]]
# The router's own timer decides when an attempt has run out (so it can tell a deadline cut
# from a slow deployment); the provider gets a little longer, as a backstop for providers
# used on their own, so the two timers never race.
_BACKSTOP_S = 0.05
# Only these count against a deployment's breaker: a prompt too long, a refusal or a bad
# request says nothing about the deployment's health.
_BREAKER_KINDS = frozenset({"rate_limit", "timeout", "unavailable"})


@dataclass(frozen=True)
class Deployment:
    name: str
    model: ModelConfig
    provider: Provider


@dataclass
class RouteTrace:
    """What the router did, for the x-bounded-* headers and the ledger."""

    attempts: int = 0
    deployment: str | None = None
    errors: list[str] = field(default_factory=list)
    # Each attempt: deployment, monotonic start and end, error kind or None (its span).
    tries: list[tuple[str, float, float, str | None]] = field(default_factory=list)


@dataclass
class RoutedStream:
    trace: RouteTrace
    chunks: AsyncIterator[Json]


class Router:
    """Routes one request over a route's targets; one router per runtime keeps their health.

    Example::

        router = Router(deployments, BreakerPolicy())
        response, trace = await router.complete(route, body)  # trace.deployment answered
    """

    def __init__(
        self,
        deployments: dict[str, Deployment],
        breaker_policy: BreakerPolicy,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ):
        self.deployments = deployments
        self.breakers = {name: Breaker(breaker_policy) for name in deployments}
        self.stats = LiveStats()
        self._rng = rng or random.Random()
        self._sleep = sleep

    def _plan(self, route: RouteConfig, exclude: frozenset[str] = frozenset()) -> list[Deployment]:
        candidates = [
            Candidate(n, self.deployments[n].model) for n in route.targets if n not in exclude
        ]
        ordered = STRATEGIES[route.strategy](candidates, self.stats, self._rng)
        return [self.deployments[c.name] for c in ordered]

    async def complete(
        self,
        route: RouteConfig,
        body: Json,
        trace: RouteTrace | None = None,
        gate: Gate | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> tuple[Json, RouteTrace]:
        """Route one request. Pass ``trace`` to still see the attempts when it raises."""
        trace = trace if trace is not None else RouteTrace()

        async def attempt(dep: Deployment, timeout: float) -> Json:
            request = ChatRequest({**body, "model": dep.model.model}, timeout + _BACKSTOP_S)
            async with asyncio.timeout(timeout):
                return await dep.provider.complete(request)

        response = await self._route(
            route, trace, attempt, settle_on_return=True, gate=gate, exclude=exclude
        )
        response["model"] = body.get("model", response.get("model"))
        return response, trace

    async def stream(
        self,
        route: RouteConfig,
        body: Json,
        trace: RouteTrace | None = None,
        gate: Gate | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> RoutedStream:
        trace = trace if trace is not None else RouteTrace()
        alias = str(body.get("model", ""))

        async def attempt(dep: Deployment, timeout: float) -> AsyncIterator[Json]:
            # The deadline bounds the wait for the first token only; once committed, each
            # later chunk gets the deployment's full per-attempt timeout, not the leftover.
            idle = _per_attempt(dep, route)
            request = ChatRequest(
                {**body, "model": dep.model.model}, idle + _BACKSTOP_S, stream=True
            )
            chunks = dep.provider.stream(request)
            try:
                async with asyncio.timeout(timeout):
                    held = await _until_first_token(chunks)
            except BaseException:
                await _close(chunks)
                raise
            return self._committed(dep, held, chunks, alias, idle)

        chunks = await self._route(
            route, trace, attempt, settle_on_return=False, gate=gate, exclude=exclude
        )
        return RoutedStream(trace, chunks)

    async def embed(
        self,
        route: RouteConfig,
        inputs: list[str] | list[list[int]],
        trace: RouteTrace | None = None,
        gate: Gate | None = None,
        *,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        """Embeddings through the same retries, timeouts and breakers as chat."""
        trace = trace if trace is not None else RouteTrace()
        extra = {} if dimensions is None else {"dimensions": dimensions}

        async def attempt(dep: Deployment, timeout: float) -> EmbeddingResult:
            async with asyncio.timeout(timeout):
                return await dep.provider.embed(
                    inputs, dep.model.model, timeout + _BACKSTOP_S, **extra
                )

        return await self._route(route, trace, attempt, settle_on_return=True, gate=gate)

    async def _route(
        self,
        route: RouteConfig,
        trace: RouteTrace,
        attempt: Callable[[Deployment, float], Awaitable[T]],
        *,
        settle_on_return: bool,
        gate: Gate | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> T:
        """Try the plan in order; return the first success or raise the deciding error.

        ``settle_on_return=False`` leaves the breaker verdict to the caller (a stream is
        judged when it ends, not when its first token arrives).
        """
        deadline = time.monotonic() + route.deadline_s
        last_error: ProviderError | None = None
        for dep in self._plan(route, exclude):
            breaker = self.breakers[dep.name]
            per_attempt = _per_attempt(dep, route)
            for tries in range(1, route.retry.attempts + 1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _deadline_error(route, trace)
                if not breaker.allow():
                    trace.errors.append(f"{dep.name}: breaker {breaker.state.value}")
                    break
                if gate is not None:
                    # After the breaker, so an open breaker never uses up a rate-limit token.
                    try:
                        await gate(dep)
                    except RateLimited as exc:
                        # Our own limit, not the deployment's health: no attempt, no
                        # breaker verdict (a claimed probe is given back), move on.
                        breaker.release()
                        exc.deployment = dep.name
                        last_error = exc
                        trace.errors.append(f"{dep.name}: {exc.kind} (gateway limit)")
                        break
                trace.attempts += 1
                timeout = min(per_attempt, remaining)
                started = time.monotonic()
                try:
                    result = await attempt(dep, timeout)
                except (ProviderError, TimeoutError) as exc:
                    last_error = _as_provider_error(exc, dep, timeout)
                    trace.errors.append(f"{dep.name}: {last_error.kind}")
                    trace.tries.append((dep.name, started, time.monotonic(), last_error.kind))
                    if isinstance(exc, TimeoutError) and timeout < per_attempt:
                        # Cut short by the request's deadline, not slow by its own measure.
                        breaker.release()
                        raise _deadline_error(route, trace) from exc
                    _settle_failure(breaker, last_error)
                    if isinstance(last_error, Timeout):
                        # A timeout is a lower bound on latency; without it, a deployment
                        # that starts hanging keeps its last good figure and least-latency
                        # keeps putting it first.
                        self.stats.observe(dep.name, time.monotonic() - started)
                    delay = self._retry_delay(route, last_error, tries, deadline)
                    if delay is None:
                        break
                    await self._sleep(delay)
                    continue
                except BaseException:
                    breaker.release()  # cancelled: a claimed half-open probe must not leak
                    raise
                if settle_on_return:
                    breaker.record(ok=True)
                ended = time.monotonic()
                self.stats.observe(dep.name, ended - started)
                trace.tries.append((dep.name, started, ended, None))
                trace.deployment = dep.name
                return result
            if last_error is not None and last_error.kind not in route.fallback_on:
                raise _annotated(last_error, trace)
        if last_error is not None:
            raise _annotated(last_error, trace)
        raise Unavailable(
            "no deployment available: " + ("; ".join(trace.errors) or "route has no targets"),
            code="no_healthy_deployment",
        )

    def _retry_delay(
        self, route: RouteConfig, error: ProviderError, tries: int, deadline: float
    ) -> float | None:
        """Seconds to wait before retrying the same target, or None to move on."""
        policy = route.retry
        if not error.retryable or tries >= policy.attempts:
            return None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            if error.retry_after > policy.max_retry_after_s:
                return None
            delay = error.retry_after
        else:
            cap = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (tries - 1))
            delay = self._rng.uniform(0, cap)
        if time.monotonic() + delay >= deadline:
            return None
        return delay

    async def _committed(
        self,
        dep: Deployment,
        held: list[Json],
        chunks: AsyncIterator[Json],
        alias: str,
        idle_timeout: float,
    ) -> AsyncIterator[Json]:
        """Replay the held chunks, then the rest; each wait for a chunk is bounded."""
        breaker = self.breakers[dep.name]
        try:
            for chunk in held:
                chunk["model"] = alias
                yield chunk
            while True:
                try:
                    async with asyncio.timeout(idle_timeout):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                chunk["model"] = alias
                yield chunk
        except (ProviderError, TimeoutError) as exc:
            error = _as_provider_error(exc, dep, idle_timeout, mid_stream=True)
            _settle_failure(breaker, error)
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            breaker.release()  # the client went away: no verdict on the deployment
            raise
        finally:
            await _close(chunks)
        breaker.record(ok=True)

    def breaker_states(self) -> dict[str, dict[str, object]]:
        return {name: b.snapshot() for name, b in self.breakers.items()}


def _settle_failure(breaker: Breaker, error: ProviderError) -> None:
    if error.kind in _BREAKER_KINDS:
        breaker.record(ok=False)
    else:
        breaker.release()


def _annotated(error: ProviderError, trace: RouteTrace) -> ProviderError:
    if len(trace.errors) > 1:
        error.message = f"{error.message} (tried: {'; '.join(trace.errors)})"
    return error


def _per_attempt(dep: Deployment, route: RouteConfig) -> float:
    return dep.model.timeout_s or route.timeout_s


def _deadline_error(route: RouteConfig, trace: RouteTrace) -> ProviderError:
    tried = f" ({'; '.join(trace.errors)})" if trace.errors else ""
    return Timeout(
        f"deadline of {route.deadline_s:g}s exceeded after {trace.attempts} attempt(s){tried}",
        code="deadline_exceeded",
    )


def _as_provider_error(
    exc: BaseException, dep: Deployment, timeout: float, *, mid_stream: bool = False
) -> ProviderError:
    if isinstance(exc, ProviderError):
        if exc.deployment is None:
            exc.deployment = dep.name
        return exc
    what = "next stream chunk" if mid_stream else "reply"
    # A provider may know that a timeout will not pass on a second try (the one
    # in-process model is busy or too slow): then move on, don't wait for it again.
    retryable = getattr(dep.provider, "timeouts_retryable", True)
    return Timeout(
        f"{dep.name}: no {what} within {timeout:g}s", deployment=dep.name, retryable=retryable
    )


async def _until_first_token(chunks: AsyncIterator[Json]) -> list[Json]:
    """Pull chunks until one carries content, a tool call or a finish reason."""
    held: list[Json] = []
    async for chunk in chunks:
        held.append(chunk)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("tool_calls") or choice.get("finish_reason"):
                return held
        if chunk.get("usage") and not chunk.get("choices"):
            return held
    if not held:
        raise Unavailable("upstream stream ended without a token")
    return held


async def _close(chunks: AsyncIterator[Json]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        # Closing a broken upstream stream must not mask the real error.
        with contextlib.suppress(Exception):
            await aclose()
