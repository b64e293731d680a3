"""context-faithfulness: is the answer supported by its context?

Reuses the groundedness guard's scorer (``bounded.validation.guards.groundedness``: IDF
word support and MiniLM cosine per sentence, combined by a fitted logistic), so an eval
and the live guard judge alike and no judge model is needed. The context is the
``context`` var (a string or a list), else the chunks retrieval cited for the answer.
"""

from __future__ import annotations

import asyncio

from bounded.evals.assertions.base import Context, Grade, Misconfigured
from bounded.evals.assertions.registry import register


@register("context-faithfulness")
async def context_faithfulness(ctx: Context) -> Grade:
    from bounded.validation.guards.groundedness import DEFAULT_MIN_SCORE, score_answer

    context = ctx.case.vars.get("context")
    sources = [context] if isinstance(context, str) else list(context or ctx.output.contexts)
    sources = [s for s in sources if isinstance(s, str) and s.strip()]
    if not sources:
        raise Misconfigured(
            "context-faithfulness needs a `context` var or an answer with retrieval citations"
        )
    threshold = DEFAULT_MIN_SCORE if ctx.spec.threshold is None else ctx.spec.threshold
    report = await asyncio.to_thread(score_answer, ctx.text, sources, min_score=threshold)
    score = float(report.overall)
    passed = (score >= threshold) != ctx.inverse
    weak = [ctx.text[s.start : s.end] for s in report.unsupported()][:3]
    reason = f"Groundedness {score:.2f} against threshold {threshold}"
    if weak:
        reason += "; unsupported: " + " | ".join(weak)
    return Grade(passed, score, reason)
