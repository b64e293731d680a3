"""Economics on the request path: estimate, reserve, then settle and write the ledger row.

    await meter.admit(call)      # 429 here, before any upstream call
    ...route...
    await meter.settle(call)     # returns once the ledger row is durable

What a hard budget guarantees (docs/economics.md says the same): a request is admitted
only if the most it can cost (its prompt, plus ``max_tokens`` of output for every choice,
at the dearest deployment of its route) fits; the ledger keeps what the upstream says it
used. A stream is cut by bounded itself once its output reaches the reserved tokens. A
non-streamed reply that reports more than was reserved is charged its true cost, flagged
on its row (``over_reservation``, and ``over_max_tokens`` when the output passed the
cap) and logged: spend can pass the budget by that excess, and only then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from bounded.config.schema import ModelConfig
from bounded.economics.accountant import Accountant
from bounded.economics.ledger import Ledger, LedgerRow, to_e10, usage_fields
from bounded.economics.prices import cost_usd, max_cost_usd
from bounded.economics.rules import rate_rules
from bounded.economics.tokens import TokenCounter, encoding_for, is_loaded, messages_tokens
from bounded.economics.usage import Usage, usage_from_openai
from bounded.errors import RateLimited, TooManyRequests
from bounded.gateway.call import Call, Json
from bounded.gateway.meter_plans import Plans, counts_exactly
from bounded.routing.router import Deployment, Gate

log = logging.getLogger("bounded.economics")

DEFAULT_MAX_OUTPUT = 4096


class Meter:
    def __init__(self, accountant: Accountant, ledger: Ledger, counter: TokenCounter):
        self.accountant = accountant
        self.ledger = ledger
        self.counter = counter
        self.plans = Plans()

    # -- admission ---------------------------------------------------------------------

    async def admit(self, call: Call) -> None:
        """Reserve the most this request can cost on any deployment of its route."""
        plan = self.plans.plan(call)
        budgets, rates = plan.budgets, plan.rates
        if call.principal.limits:
            own_budgets, own_rates = self.plans.key_rules(call.principal)
            budgets, rates = own_budgets + budgets, own_rates + rates
        if not budgets and not rates and not plan.deployment_limited:
            return  # nothing to reserve: count tokens only if the upstream reports none
        models = plan.models
        model = plan.estimated_for
        counter = None
        if model is not None and call.operation == "chat":
            counter = self.counter.loaded_counter(model)
        if model is not None and counter is not None:
            # One deployment, an encoding that is ready: no coroutine and no loop over models.
            body = call.upstream
            call.prompt_estimate = messages_tokens(counter, body["messages"])
            if body.get("tools"):
                call.prompt_estimate += self.counter.count_tools(body["tools"], model)
        else:
            call.prompt_estimate = await self.prompt_tokens(call, models)
        # A route of one deployment (the usual case) needs no max() over a generator.
        if len(models) == 1:
            call.max_output = _max_output(call, models[0])
        else:
            call.max_output = max(_max_output(call, m) for m in models)
        if not budgets and not rates:
            return
        if len(models) == 1:
            max_cost = max_cost_usd(plan.prices[0], call.prompt_estimate, call.max_output)
        else:
            max_cost = max(
                max_cost_usd(price, call.prompt_estimate, call.max_output) for price in plan.prices
            )
        call.hold = await self.accountant.reserve(
            budgets, rates, max_cost, call.prompt_estimate + call.max_output, call.ts
        )
        call.hold.reserved_cost = max_cost

    async def prompt_tokens(self, call: Call, models: list[ModelConfig]) -> int:
        """The most prompt (or embedding input) tokens any deployment will bill.

        Providers that can count exactly (the local model renders its own chat template)
        do; the others get the offline OpenAI count, an estimate for non-OpenAI models.
        """
        body = call.upstream
        counts: list[int] = []
        for model in models:
            if call.operation == "embeddings":
                counts.append(await self._embedding_tokens(body["input"], model.model))
                continue
            provider = call.runtime.providers[model.provider]
            if counts_exactly(provider):
                exact = provider.count_prompt_tokens  # type: ignore[attr-defined]
                counts.append(await exact({**body, "model": model.model}))
                continue
            counter = self.counter.loaded_counter(model.model)
            if counter is None:
                await self._ensure_encoding(model.model)
                counter = self.counter.counter_for(model.model)
            count = messages_tokens(counter, body["messages"])
            if body.get("tools"):
                count += self.counter.count_tools(body["tools"], model.model)
            counts.append(count)
        return counts[0] if len(counts) == 1 else max(counts)

    async def _embedding_tokens(self, value: Any, model: str) -> int:
        if isinstance(value, str):
            value = [value]
        if value and isinstance(value[0], int):
            return len(value)  # one array of token ids
        if value and isinstance(value[0], list):
            return sum(len(ids) for ids in value)
        await self._ensure_encoding(model)
        return sum(self.counter.count_text(text, model) for text in value)

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

    # -- while a stream runs -----------------------------------------------------------

    def observe_chunk(self, call: Call, chunk: Json) -> None:
        """Track a streamed chunk: first-token time, text for counting, final usage."""
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if call.first_token_at is None:
                    call.first_token_at = time.perf_counter()
                call.output_text.append(text)
                call.output_chars += len(text)
            for tool_call in delta.get("tool_calls") or ():
                if call.first_token_at is None:
                    call.first_token_at = time.perf_counter()
                arguments = (tool_call.get("function") or {}).get("arguments") or ""
                call.output_text.append(arguments)
                call.output_chars += len(arguments)
        usage = chunk.get("usage")
        if usage:
            # Providers that repeat cumulative usage on many chunks: the last one wins.
            call.usage = _read_usage(usage)

    def output_cap_reached(self, call: Call) -> bool:
        """Has a reserved stream produced all the output tokens it reserved?

        Cheap on the common path: a token is at least one byte and a character at most
        four, so while four times the characters received is under the cap nothing is
        counted. Past that the text is counted, and counted again only once it has grown
        enough to hold the tokens that were left.
        """
        if call.hold is None or not call.max_output:
            return False
        bound = 4 * call.output_chars  # no more tokens than this
        if bound < call.max_output or bound < call.cap_check_at:
            return False
        model = call.runtime.config.models.get(call.deployment or "")
        used = self.counter.count_text("".join(call.output_text), model.model if model else "")
        if used >= call.max_output:
            return True
        call.cap_check_at = bound + (call.max_output - used)
        return False

    # -- settlement --------------------------------------------------------------------

    async def settle(self, call: Call) -> None:
        """Price the call, settle its reservation and write its row (durable on return).

        Settles once: a second call (a stream abandoned while its settlement runs) is a
        no-op.
        """
        if call.recorded:
            return
        call.recorded = True
        runtime = call.runtime
        model = runtime.config.models.get(call.deployment or "")
        if call.usage is None and model is not None and (call.status < 400 or call.output_text):
            # No usage from the upstream: count what it was sent and what it sent back,
            # including a stream that failed or was dropped after its first tokens.
            await self._count_usage(call, model)
        usage = call.usage or Usage()
        if model is not None:
            call.cost = cost_usd(self.plans.price(model), usage)
        if call.baseline_model is not None:
            dearest: ModelConfig = call.baseline_model
            call.baseline_cost = cost_usd(self.plans.price(dearest), usage)
        self._flag_overruns(call, usage)
        if call.hold is not None:
            await self.accountant.settle(call.hold, call.cost, usage.total_tokens)
        for i, (name, hold) in enumerate(call.deployment_holds):
            # The router stops at the answer: only the last attempt can have used tokens;
            # attempts that failed get their reservation back.
            answered = i == len(call.deployment_holds) - 1 and name == call.deployment
            await self.accountant.settle(hold, Decimal(0), usage.total_tokens if answered else 0)
        await self.ledger.record(_row(call, model, usage))
        for rule in call.hold.alerts if call.hold else ():
            await self.ledger.record_alert(
                call.ts, rule.scope, rule.period, rule.amount, call.trace_id
            )

    async def _count_usage(self, call: Call, model: ModelConfig) -> None:
        if not call.prompt_estimate:
            call.prompt_estimate = await self.prompt_tokens(call, [model])
        await self._ensure_encoding(model.model)
        output = self.counter.count_text("".join(call.output_text), model.model)
        call.usage = Usage(call.prompt_estimate, output)
        call.usage_source = "counted"

    def _flag_overruns(self, call: Call, usage: Usage) -> None:
        """An upstream that used more than was reserved: keep the truth, say so loudly."""
        if call.hold is None:
            return
        if call.max_output and usage.output_tokens > call.max_output:
            call.flags.append("over_max_tokens")
        if call.cost > call.hold.reserved_cost:
            call.flags.append("over_reservation")
            log.warning(
                "deployment %s reported %d input and %d output tokens for call %s, more than "
                "the %d + %d reserved: charged the true $%s, which may pass a hard budget",
                call.deployment,
                usage.input_tokens,
                usage.output_tokens,
                call.trace_id,
                call.prompt_estimate,
                call.max_output,
                call.cost,
            )


def _row(call: Call, model: ModelConfig | None, usage: Usage) -> LedgerRow:
    return LedgerRow(
        ts=call.ts,
        trace_id=call.trace_id,
        session_id=call.session_id,
        key_id=call.principal.key_id,
        team=call.team,
        feature=call.target.name if call.target.feature else None,
        arm=call.arm,
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
        operation=call.operation,
        flags=",".join(call.flags) or None,
        validation=call.validation,
        groundedness=call.groundedness,
        baseline_cost_e10=None if call.baseline_cost is None else to_e10(call.baseline_cost),
        prompt_version=None if call.prompt_version is None else str(call.prompt_version),
        release_id=call.release_id,
        **usage_fields(usage),
    )


def usage_from_response(response: Json) -> Usage | None:
    return _read_usage(response.get("usage"))


def _read_usage(usage: Any) -> Usage | None:
    return usage_from_openai(usage) if isinstance(usage, dict) else None


def _max_output(call: Call, model: ModelConfig) -> int:
    """Output tokens to reserve on ``model``: per choice times the number of choices."""
    if call.operation == "embeddings":
        return 0
    body = call.upstream
    choices = body.get("n") or 1
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    if requested:
        per_choice = int(requested)
    elif model.max_output_tokens:
        per_choice = model.max_output_tokens
    elif model.context_window:
        per_choice = max(1, model.context_window - call.prompt_estimate)
    else:
        per_choice = DEFAULT_MAX_OUTPUT
    return int(per_choice * choices)
