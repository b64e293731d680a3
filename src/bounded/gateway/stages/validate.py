"""Validate: act on the check's verdict: repair, escalate, fail, or let the answer through.

On a failing answer the feature's ``output.on_fail`` decides: ``repair`` re-asks the same
route with the problems listed (at most ``max_repairs`` times), then escalates; ``escalate``
asks the route again without the deployment that failed (the next target, or a cascade's
next step up); ``block`` fails at once; ``log`` lets the answer through marked failed. A
failed request is a 422 ``output_invalid`` naming the problems. Every pass is its own
upstream call with its own reservation and ledger row (flagged ``repair``, ``escalation``
or ``cascade``), all under the request's trace id.

The response says what happened: ``x-bounded-validation: passed|repaired|escalated|failed``
and ``bounded.validation`` in the body (or in a last stream event).
"""

from __future__ import annotations

from collections.abc import Awaitable
from decimal import Decimal

from bounded.errors import Unprocessable
from bounded.gateway.call import Call, Json, Next, Reply
from bounded.gateway.stages.check import Verdict
from bounded.gateway.streams import closing, then_last
from bounded.validation.enforce import FeatureGuards
from bounded.validation.output import repair_messages, response_format


class OutputInvalid(Unprocessable):
    default_code = "output_invalid"


class Validate:
    name = "validate"

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        guards: FeatureGuards | None = call.runtime.guards.get(call.target.name)
        if guards is None or not guards.checks_output:
            return next(call)
        return self._validated(call, next, guards)

    async def _validated(self, call: Call, next: Next, guards: FeatureGuards) -> Reply:
        if guards.schema is not None and "response_format" not in call.body:
            call.upstream["response_format"] = response_format(
                call.target.name, guards.schema.schema
            )
        passes: list[Call] = []
        attempt = call.fork()
        repairs = escalations = 0
        try:
            while True:
                passes.append(attempt)
                reply = await next(attempt)
                verdict: Verdict = attempt.check
                if verdict.ok:
                    status = "escalated" if escalations else "repaired" if repairs else "passed"
                    return _answer(call, passes, reply, status, verdict)
                step = _next_step(guards, verdict, repairs, attempt, call)
                if step is None:
                    if guards.on_fail == "log" and verdict.blocked is None:
                        return _answer(call, passes, reply, "failed", verdict)
                    await _discard(reply)
                    raise _failure(call, passes, verdict)
                await _discard(reply)  # its row is written as the stream ends
                if step == "repair":
                    repairs += 1
                    attempt = _repair(attempt, reply, verdict)
                else:
                    escalations += 1
                    attempt = _escalate(attempt, guards)
        finally:
            _adopt(call, passes)


def _next_step(
    guards: FeatureGuards, verdict: Verdict, repairs: int, attempt: Call, call: Call
) -> str | None:
    if verdict.blocked is not None:
        return None  # an output guard that blocks is not a request for another try
    left = [t for t in call.target.route.targets if t not in attempt.exclude | {attempt.deployment}]
    can_escalate = bool(left) and guards.on_fail in ("repair", "escalate")
    if verdict.escalate:
        return "escalate" if left else None
    if guards.on_fail == "repair" and repairs < guards.max_repairs and verdict.problems:
        return "repair"
    return "escalate" if can_escalate else None


def _repair(previous: Call, reply: Reply, verdict: Verdict) -> Call:
    attempt = previous.fork("repair")
    attempt.exclude = previous.exclude
    text = previous.answer_text
    attempt.upstream["messages"] = repair_messages(
        previous.upstream["messages"], text, verdict.problems
    )
    return attempt


def _escalate(previous: Call, guards: FeatureGuards) -> Call:
    attempt = previous.fork("cascade" if guards.cascade else "escalation")
    attempt.exclude = previous.exclude | {previous.deployment or ""}
    attempt.upstream = dict(previous.upstream)
    return attempt


async def _discard(reply: Reply) -> None:
    """Read a refused stream to its end (it is already buffered), so its pass settles."""
    if reply.chunks is not None:
        async with closing(reply.chunks):
            async for _ in reply.chunks:
                pass


def _summary(status: str, passes: list[Call], verdict: Verdict) -> Json:
    return {
        "status": status,
        "passes": len(passes),
        "repairs": sum("repair" in p.flags for p in passes),
        "escalations": sum("escalation" in p.flags or "cascade" in p.flags for p in passes),
        **verdict.as_json(),
    }


def _answer(call: Call, passes: list[Call], reply: Reply, status: str, verdict: Verdict) -> Reply:
    call.validation = status
    call.headers["x-bounded-validation"] = status
    summary = _summary(status, passes, verdict)
    if reply.body is not None:
        reply.body["bounded"] = {**(reply.body.get("bounded") or {}), "validation": summary}
    elif reply.chunks is not None:
        reply.chunks = then_last(reply.chunks, lambda last: _summary_event(last, summary))
    return reply


def _summary_event(last: Json, summary: Json) -> Json:
    """A last stream event shaped like the usage chunk (no choices), as SDKs parse it."""
    return {
        "id": last.get("id"),
        "object": "chat.completion.chunk",
        "created": last.get("created", 0),
        "model": last.get("model"),
        "choices": [],
        "bounded": {"validation": summary},
    }


def _failure(call: Call, passes: list[Call], verdict: Verdict) -> OutputInvalid:
    call.validation = "failed"
    call.headers["x-bounded-validation"] = "failed"
    if verdict.blocked is not None:
        kinds = ", ".join(sorted({f.kind for f in verdict.blocked.findings}))
        what = f"the {verdict.blocked.spec.kind} guard blocked it ({kinds})"
    else:
        what = "; ".join(verdict.problems) or "it failed the feature's output checks"
    tries = f" after {len(passes)} attempts" if len(passes) > 1 else ""
    return OutputInvalid(f"the answer failed validation{tries}: {what}")


def _adopt(call: Call, passes: list[Call]) -> None:
    """The request's own call reflects its passes: the last one answered; costs add up."""
    if not passes:
        return
    last = passes[-1]
    call.trace.attempts = sum(p.trace.attempts for p in passes)
    call.trace.deployment = last.trace.deployment
    call.trace.errors = [e for p in passes for e in p.trace.errors]
    call.deployment, call.hold = last.deployment, last.hold
    call.cost = sum((p.cost for p in passes), Decimal(0))
    call.recorded = all(p.recorded for p in passes)
