"""Economics on the request path: estimate, reserve, then settle and write the ledger row.

call = Call.begin(trace_id, session_id, principal, target, stream=False)
await meter.admit(call, runtime, body)      # 429 here, before any upstream call
...route...
await meter.settle(call, runtime)          # returns once the ledger row is durable
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bounded.config.schema import BoundedConfig, ModelConfig
from bounded.economics.accountant import Accountant, Hold
from bounded.economics.ledger import Ledger, LedgerRow, to_e10, usage_fields
from bounded.economics.prices import cost_usd, max_cost_usd, price_for
from bounded.economics.rules import BudgetRule, RateRule, budget_rules, key_rules, rate_rules
from bounded.economics.tokens import TokenCounter, encoding_for, is_loaded
from bounded.economics.usage import Usage
from bounded.errors import RateLimited, TooManyRequests
from bounded.gateway.auth import Principal
from bounded.gateway.runtime import Runtime, Target
from bounded.routing.router import Deployment, Gate

DEFAULT_MAX_OUTPUT = 4096


@dataclass
class Call:
    """What one request did, filled in as it goes; becomes its ledger row."""

    trace_id: str
    session_id: str | None
    principal: Principal
    target: Target
    stream: bool
    ts: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    prompt_estimate: int = 0
    body: dict[str, Any] | None = None
    max_output: int = 0
    hold: Hold | None = None
    # Per-deployment rate limits taken by the router's gate, one per deployment tried.
    deployment_holds: list[tuple[str, Hold]] = field(default_factory=list)
    deployment: str | None = None
    attempts: int = 0
    first_token_at: float | None = None
    usage: Usage | None = None
    usage_source: str = "provider"
    output_text: list[str] = field(default_factory=list)
    status: int = 200
    error_class: str | None = None
    cost: Decimal = Decimal(0)
    recorded: bool = False
    streaming: bool = False  # set once a stream's body has started

    @property
    def team(self) -> str | None:
        if self.target.team:
            return self.target.team
        return self.principal.teams[0] if self.principal.teams else None


class Meter:
    def __init__(self, accountant: Accountant, ledger: Ledger, counter: TokenCounter):
        self.accountant = accountant
        self.ledger = ledger
        self.counter = counter

    def rules(self, call: Call, config: BoundedConfig) -> tuple[list[BudgetRule], list[RateRule]]:
        budgets, rates = key_rules(call.principal.key_id, call.principal.limits)
        feature = call.target.feature
        if feature is not None:
            budgets += budget_rules(f"feature:{call.target.name}", feature.budget)
            rates += rate_rules(f"feature:{call.target.name}", feature.rate_limit)
        team = config.teams.get(call.team or "")
        if team is not None:
            budgets += budget_rules(f"team:{call.team}", team.budget)
            rates += rate_rules(f"team:{call.team}", team.rate_limit)
        return budgets, rates

    async def admit(self, call: Call, runtime: Runtime, body: dict[str, Any]) -> None:
        """Reserve the most this request can cost on any deployment of its route."""
        budgets, rates = self.rules(call, runtime.config)
        models = [runtime.config.models[name] for name in call.target.route.targets]
        call.body = body
        if not budgets and not rates and not any(m.rate_limit for m in models):
            return  # nothing to reserve: count tokens only if the upstream reports none
        call.prompt_estimate = await self.prompt_tokens(runtime, models, body)
        max_out = max(_max_output(body, m, call.prompt_estimate) for m in models)
        call.max_output = max_out
        if not budgets and not rates:
            return
        max_cost = max(
            max_cost_usd(price_for(m.model, m.price).price, call.prompt_estimate, max_out)
            for m in models
        )
        call.hold = await self.accountant.reserve(
            budgets, rates, max_cost, call.prompt_estimate + max_out, call.ts
        )

    async def prompt_tokens(
        self, runtime: Runtime, models: list[ModelConfig], body: dict[str, Any]
    ) -> int:
        """The most prompt tokens any deployment of the route will bill.

        Providers that can count exactly (the local model renders its own chat template)
        do; the others get the offline OpenAI count, an estimate for non-OpenAI models.
        """
        counts: list[int] = []
        for model in models:
            exact = getattr(runtime.providers[model.provider], "count_prompt_tokens", None)
            if exact is not None:
                counts.append(await exact({**body, "model": model.model}))
                continue
            await self._ensure_encoding(model.model)
            count = self.counter.count_messages(body["messages"], model.model)
            if body.get("tools"):
                count += self.counter.count_tools(body["tools"], model.model)
            counts.append(count)
        return max(counts)

    async def _ensure_encoding(self, model: str) -> None:
        """Load an encoding the first time it is needed, in a thread, not on the loop."""
        encoding = encoding_for(model)
        if not is_loaded(encoding):
            await asyncio.to_thread(self.counter.warm, [encoding])

    def deployment_gate(self, call: Call) -> Gate:
        """The router's check before each attempt: the deployment's own rate limit."""

        async def gate(dep: Deployment) -> None:
            rates = rate_rules(f"deployment:{dep.name}", dep.model.rate_limit)
            if not rates:
                return
            tokens = call.prompt_estimate + call.max_output
            try:
                hold = await self.accountant.reserve([], rates, Decimal(0), tokens, call.ts)
            except TooManyRequests as exc:
                # A RateLimited lets the router fall back; the client sees it only when no
                # target is left, as a 429 with the wait.
                raise RateLimited(
                    exc.message, retry_after=exc.retry_after, deployment=dep.name, code=exc.code
                ) from exc
            call.deployment_holds.append((dep.name, hold))

        return gate

    def observe_chunk(self, call: Call, chunk: dict[str, Any]) -> None:
        """Track a streamed chunk: first-token time, text for counting, final usage."""
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if call.first_token_at is None:
                    call.first_token_at = time.perf_counter()
                call.output_text.append(text)
            for tool_call in delta.get("tool_calls") or ():
                if call.first_token_at is None:
                    call.first_token_at = time.perf_counter()
                call.output_text.append((tool_call.get("function") or {}).get("arguments") or "")
        usage = chunk.get("usage")
        if usage:
            # Providers that repeat cumulative usage on many chunks: the last one wins.
            call.usage = _read_usage(usage)

    async def settle(self, call: Call, runtime: Runtime) -> None:
        """Price the call, settle its reservation and write its row (durable on return)."""
        call.recorded = True
        model = runtime.config.models.get(call.deployment or "")
        if call.usage is None and model is not None and call.status < 400:
            if not call.prompt_estimate and call.body is not None:
                call.prompt_estimate = await self.prompt_tokens(runtime, [model], call.body)
            await self._ensure_encoding(model.model)
            output = self.counter.count_text("".join(call.output_text), model.model)
            call.usage = Usage(call.prompt_estimate, output)
            call.usage_source = "counted"
        usage = call.usage or Usage()
        if model is not None:
            call.cost = cost_usd(price_for(model.model, model.price).price, usage)
        if call.hold is not None:
            await self.accountant.settle(call.hold, call.cost, usage.total_tokens)
        for i, (name, hold) in enumerate(call.deployment_holds):
            # The router stops at the answer: only the last attempt can have used tokens;
            # attempts that failed get their reservation back.
            answered = i == len(call.deployment_holds) - 1 and name == call.deployment
            await self.accountant.settle(hold, Decimal(0), usage.total_tokens if answered else 0)
        row = LedgerRow(
            ts=call.ts,
            trace_id=call.trace_id,
            session_id=call.session_id,
            key_id=call.principal.key_id,
            team=call.team,
            feature=call.target.name if call.target.feature else None,
            arm="stable",
            provider=model.provider if model else None,
            deployment=call.deployment,
            model=model.model if model else None,
            cost_e10=to_e10(call.cost),
            usage_source=call.usage_source if call.usage is not None else "none",
            latency_ms=(time.perf_counter() - call.started) * 1000,
            ttft_ms=(call.first_token_at - call.started) * 1000 if call.first_token_at else None,
            status=call.status,
            error_class=call.error_class,
            attempts=call.attempts,
            stream=call.stream,
            **usage_fields(usage),
        )
        await self.ledger.record(row)
        for rule in call.hold.alerts if call.hold else ():
            await self.ledger.record_alert(
                call.ts, rule.scope, rule.period, rule.amount, call.trace_id
            )


def usage_from_response(response: dict[str, Any]) -> Usage | None:
    return _read_usage(response.get("usage"))


def _read_usage(usage: Any) -> Usage | None:
    from bounded.economics.usage import usage_from_openai

    return usage_from_openai(usage) if isinstance(usage, dict) else None


def _max_output(body: dict[str, Any], model: ModelConfig, prompt_tokens: int) -> int:
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(requested, int) and requested > 0:
        return requested
    if model.max_output_tokens:
        return model.max_output_tokens
    if model.context_window:
        return max(1, model.context_window - prompt_tokens)
    return DEFAULT_MAX_OUTPUT
