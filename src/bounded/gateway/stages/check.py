"""Check: judge one answer against the feature's output policy, before it is settled.

Runs inside settle, once per upstream pass, so each pass's ledger row carries its own
verdict. It checks the output schema, the tool calls, the output guards and (for features
with retrieval) groundedness, applies output redaction, and leaves the verdict on the call
for the validate stage to act on (repair, escalate, fail).

A streamed answer that must be checked whole (a schema, tool calls, output guards) is
read to its end here and released after the check, in SSE framing, as one content chunk
and the upstream's own finishing chunks: the client's first token waits for the check,
and a failing answer never reaches it as a half-sent stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from bounded.gateway.call import Call, Json, Next, Reply
from bounded.gateway.streams import closing
from bounded.validation.enforce import FeatureGuards, Hit
from bounded.validation.guards.base import ScanContext
from bounded.validation.tools import check_tool_calls

# Above this many characters of answer, guards and groundedness run in a thread.
_INLINE_CHARS = 16_384


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)  # schema and tool-call problems
    hits: list[Hit] = field(default_factory=list)  # output guards that found something
    blocked: Hit | None = None
    escalate: bool = False
    groundedness: float | None = None
    grounded: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems and self.blocked is None and not self.escalate and self.grounded

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.problems:
            out["errors"] = self.problems
        if self.hits:
            out["guards"] = [hit.as_json() for hit in self.hits]
        if self.groundedness is not None:
            out["groundedness"] = round(self.groundedness, 4)
        return out


class Check:
    name = "check"

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        guards: FeatureGuards | None = call.runtime.guards.get(call.target.name)
        if guards is None or not guards.checks_output:
            return next(call)
        return self._checked(call, next, guards)

    async def _checked(self, call: Call, next: Next, guards: FeatureGuards) -> Reply:
        reply = await next(call)
        if reply.chunks is not None:
            chunks = await _drain(reply.chunks)
            message = _merge(chunks)
        else:
            chunks = []
            message = ((reply.body or {}).get("choices") or [{}])[0].get("message") or {}
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        # Groundedness embeds sentences (tens of milliseconds): never on the event loop.
        if len(text) > _INLINE_CHARS or (guards.groundedness is not None and call.sources):
            verdict = await asyncio.to_thread(_judge, call, guards, message, text)
        else:
            verdict = _judge(call, guards, message, text)
        call.check, call.answer_text = verdict, text
        call.validation = "passed" if verdict.ok else "failed"
        call.groundedness = verdict.groundedness
        if verdict.ok and guards.cascade:
            call.baseline_model = _dearest(call)
        if reply.chunks is not None:
            call.buffered = True
            reply.chunks = _replay(chunks, message)
        return reply


def _judge(call: Call, guards: FeatureGuards, message: Json, text: str) -> Verdict:
    verdict = Verdict()
    if guards.schema is not None and not message.get("tool_calls"):
        verdict.problems += guards.schema.problems(text)
    calls = message.get("tool_calls") or []
    if calls and guards.tools is not None:
        verdict.problems += check_tool_calls(calls, call.body.get("tools") or [], guards.tools)
    if guards.output and text:
        from bounded.validation.guards.redact import Vault

        outcome = guards.output.run(text, ScanContext("output", guards.risk_tier), Vault())
        verdict.hits = outcome.hits
        verdict.blocked = outcome.blocked
        verdict.escalate = outcome.escalate is not None
        if outcome.text != text:
            message["content"] = outcome.text
        call.guard_hits += [("output", hit) for hit in outcome.hits]
        if outcome.hits and "output_guard" not in call.flags:
            call.flags.append("output_guard")  # on the ledger row: a release signal
    spec = guards.groundedness
    if spec is not None and text and call.sources:
        from bounded.validation.guards.groundedness import score_answer

        minimum = spec.min_score if spec.min_score is not None else 0.5
        embedding = spec.options.get("embedding")
        report = score_answer(text, call.sources, embedding=embedding, min_score=minimum)
        verdict.groundedness = report.overall
        if report.overall < minimum and spec.action in ("block", "escalate"):
            verdict.grounded = False
            verdict.escalate = verdict.escalate or spec.action == "escalate"
            verdict.problems.append(
                f"the answer is not supported by its sources "
                f"(groundedness {report.overall:.2f} < {minimum:g})"
            )
    if guards.cascade and not verdict.ok:
        verdict.escalate = True  # a cascade sends a failing answer up, never back
    return verdict


def _dearest(call: Call) -> Any:
    """The model a cascade would have used had it always gone to its last target."""
    from bounded.routing.strategies import STRATEGIES, Candidate

    config = call.runtime.config
    candidates = [Candidate(n, config.models[n]) for n in call.target.route.targets]
    order = STRATEGIES["cascade"](candidates, call.runtime.router.stats, call.runtime.router._rng)
    return config.models[order[-1].name]


async def _drain(chunks: AsyncIterator[Json]) -> list[Json]:
    collected: list[Json] = []
    async with closing(chunks):
        async for chunk in chunks:
            collected.append(chunk)
    return collected


def _merge(chunks: list[Json]) -> Json:
    """The first choice's message, put back together from its deltas."""
    content: list[str] = []
    calls: dict[int, Json] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            for part in delta.get("tool_calls") or ():
                slot = calls.setdefault(
                    part.get("index", 0),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = part.get("id") or slot["id"]
                function = part.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
    message: Json = {"role": "assistant", "content": "".join(content)}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


async def _replay(chunks: list[Json], message: Json) -> AsyncIterator[Json]:
    """The checked answer as one chunk, then the upstream's finishing chunks as sent."""
    like = chunks[0] if chunks else {}
    delta: Json = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
    yield {
        "id": like.get("id"),
        "object": "chat.completion.chunk",
        "created": like.get("created", 0),
        "model": like.get("model"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    for chunk in chunks:
        choices = chunk.get("choices") or []
        if any(c.get("finish_reason") for c in choices) or (not choices and chunk.get("usage")):
            yield {**chunk, "choices": [{**c, "delta": {}} for c in choices]}
