"""Model-graded assertions: llm-rubric, factuality, answer-relevance, model-graded-closedqa.

The judge is a bounded model named by ``evals.judge`` in bounded.yaml (or the
assertion's ``provider: openai:chat:NAME``), called through the same gateway as the
cases. SmolLM2-135M, the model bounded embeds, is far too weak to judge (it cannot
follow a rubric or emit the verdict JSON reliably): name a capable model. Verdicts
from a judge are noisy, so ``--repeat N`` re-grades them and the gate counts the spread.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bounded.evals.assertions.base import Context, Grade, Misconfigured
from bounded.evals.assertions.overlap import cosine, embed
from bounded.evals.assertions.registry import register
from bounded.evals.assertions.structured import extract_json_objects

RUBRIC_SYSTEM = (
    "You grade an output against a rubric. If the rubric's statement is true of the "
    "output, it passes. Reply with one JSON object and nothing else: "
    '{"reason": "<one sentence>", "pass": true or false, "score": <0.0 to 1.0>}'
)

FACTUALITY_SYSTEM = (
    "You compare a submitted answer with an expert answer to the same question, on facts "
    "only (ignore style, grammar and punctuation). Choose one category:\n"
    "(A) the submission is a subset of the expert answer and fully consistent with it;\n"
    "(B) the submission is a superset of the expert answer and fully consistent with it;\n"
    "(C) the submission holds the same details as the expert answer;\n"
    "(D) the submission and the expert answer disagree;\n"
    "(E) they differ, but the differences do not matter for factuality.\n"
    'Reply with one JSON object and nothing else: {"category": "A".."E", "reason": "..."}'
)

RELEVANCE_SYSTEM = (
    "Write three different questions that the given answer would answer, one per line, "
    "and nothing else."
)


def _first_json(text: str) -> dict[str, Any] | None:
    found = extract_json_objects(text)
    return found[0] if found else None


def _tokens(usage: dict[str, int]) -> dict[str, int]:
    return {**usage, "numRequests": 1}


def _render_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@register("llm-rubric")
async def llm_rubric(ctx: Context) -> Grade:
    if ctx.value is None or ctx.value == "":
        raise Misconfigured("llm-rubric needs a rubric as its value")
    judge = ctx.need_judge()
    text, usage = await judge.complete(
        [
            {"role": "system", "content": RUBRIC_SYSTEM},
            {
                "role": "user",
                "content": f"<Output>\n{ctx.text}\n</Output>\n"
                f"<Rubric>\n{_render_value(ctx.value)}\n</Rubric>",
            },
        ]
    )
    parsed = _first_json(text)
    if parsed is None:
        return Grade(
            False,
            0.0,
            f"Could not extract JSON from llm-rubric response: {text[:200]}",
            tokens=_tokens(usage),
        )
    score = float(parsed.get("score", 1.0 if parsed.get("pass") else 0.0))
    passed = bool(parsed.get("pass", score >= 0.5))
    threshold = ctx.spec.threshold
    if threshold is not None:
        passed = passed and score >= threshold
    passed = passed != ctx.inverse
    return Grade(passed, score, str(parsed.get("reason", "")), tokens=_tokens(usage))


@register("model-graded-closedqa")
async def closed_qa(ctx: Context) -> Grade:
    judge = ctx.need_judge()
    text, usage = await judge.complete(
        [
            {
                "role": "system",
                "content": "Does the submission meet the criterion? Explain in one sentence, "
                "then end with a line holding only Y or N.",
            },
            {
                "role": "user",
                "content": f"[Question]: {ctx.prompt}\n[Submission]: {ctx.text}\n"
                f"[Criterion]: {_render_value(ctx.value)}",
            },
        ]
    )
    passed = text.rstrip().endswith("Y") != ctx.inverse
    return Grade(passed, float(passed), text.strip()[:500], tokens=_tokens(usage))


@register("factuality")
async def factuality(ctx: Context) -> Grade:
    if not isinstance(ctx.value, str) or not ctx.value:
        raise Misconfigured("factuality needs the reference answer as its value")
    judge = ctx.need_judge()
    question = ctx.case.vars.get("question") or ctx.case.vars.get("query") or ctx.prompt
    text, usage = await judge.complete(
        [
            {"role": "system", "content": FACTUALITY_SYSTEM},
            {
                "role": "user",
                "content": f"[Question]: {question}\n[Expert]: {ctx.value}\n"
                f"[Submission]: {ctx.text}",
            },
        ]
    )
    parsed = _first_json(text) or {}
    category = str(parsed.get("category", "")).strip().strip("()").upper()[:1]
    if category not in "ABCDE" or not category:
        return Grade(
            False,
            0.0,
            f"Could not read a factuality category from: {text[:200]}",
            tokens=_tokens(usage),
        )
    scores = ctx.spec.config.get("factuality") or {}
    names = {"A": "subset", "B": "superset", "C": "agree", "D": "disagree", "E": "differButFactual"}
    score = float(scores.get(names[category], 0.0 if category == "D" else 1.0))
    passed = (score > 0) != ctx.inverse
    return Grade(
        passed, score, f"({category}) {parsed.get('reason', '')}".strip(), tokens=_tokens(usage)
    )


@register("answer-relevance")
async def answer_relevance(ctx: Context) -> Grade:
    judge = ctx.need_judge()
    query = ctx.case.vars.get("query")
    query = query if isinstance(query, str) else ctx.prompt
    text, usage = await judge.complete(
        [{"role": "system", "content": RELEVANCE_SYSTEM}, {"role": "user", "content": ctx.text}]
    )
    questions = [q.strip(" -0123456789.") for q in text.splitlines() if q.strip()][:3]
    if not questions:
        return Grade(False, 0.0, "The judge wrote no questions", tokens=_tokens(usage))
    vectors = await asyncio.to_thread(embed, [query, *questions])
    score = sum(cosine(vectors[0], v) for v in vectors[1:]) / len(questions)
    threshold = 0.5 if ctx.spec.threshold is None else ctx.spec.threshold
    passed = (score >= threshold) != ctx.inverse
    return Grade(
        passed, score, f"Relevance {score:.2f} against threshold {threshold}", tokens=_tokens(usage)
    )
