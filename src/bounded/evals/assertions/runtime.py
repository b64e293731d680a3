"""What the call itself measured: latency (ms), cost (USD, bounded's ledger price) and
the finish reason, as promptfoo grades them."""

from __future__ import annotations

from bounded.evals.assertions.base import Context, Grade, Misconfigured
from bounded.evals.assertions.registry import register


def _limit(ctx: Context, measured: float, unit: str, name: str) -> Grade:
    threshold = ctx.spec.threshold
    if threshold is None:
        if ctx.inverse:
            raise Misconfigured(f"{name} assertion requires a threshold when using not-{name}")
        if not ctx.spec.metric:
            raise Misconfigured(
                f"{name} assertion without a threshold must set `metric` "
                "to record as a named metric"
            )
        return Grade(True, measured, "Assertion passed")
    passed = measured > threshold if ctx.inverse else measured <= threshold
    if passed:
        return Grade(True, 1.0, "Assertion passed")
    rel = "less than or equal to" if ctx.inverse else "greater than"
    return Grade(
        False, 0.0, f"{name.title()} {measured:g}{unit} is {rel} threshold {threshold:g}{unit}"
    )


@register("latency")
def latency(ctx: Context) -> Grade:
    return _limit(ctx, round(ctx.output.latency_ms), "ms", "latency")


@register("cost")
def cost(ctx: Context) -> Grade:
    return _limit(ctx, ctx.output.cost, "", "cost")


@register("finish-reason")
def finish_reason(ctx: Context) -> Grade:
    if not isinstance(ctx.value, str):
        raise Misconfigured('"finish-reason" assertion type must have a string value')
    got = ctx.output.finish_reason
    if not got:
        return Grade(False, 0.0, "Provider did not supply stop/finish reason")
    passed = got.lower() == ctx.value.lower()
    reason = (
        "Assertion passed" if passed else f'Expected finish reason "{ctx.value}" but got "{got}"'
    )
    return Grade(passed, float(passed), reason)
