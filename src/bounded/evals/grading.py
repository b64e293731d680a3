"""Grade one output against a case's assertions, the way promptfoo scores a test.

A test's score is the weighted mean of its assertions' scores; it passes when every
assertion passes, or, with a test ``threshold``, when the score reaches it. ``assert-set``
is a nested test with its own threshold and weight. Named ``metric`` scores are
weighted means too. Judged assertions are graded ``repeat`` times on the same output.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bounded.evals.assertions.base import Context, Grade, Judge, Misconfigured
from bounded.evals.assertions.registry import handler
from bounded.evals.model import AssertSpec, Case, Output, Provider
from bounded.evals.template import render_value
from bounded.evals.yamlio import is_ref, ref_path

KEEP_REF = frozenset({"python", "is-json", "contains-json", "javascript"})


@dataclass(slots=True)
class CaseGrade:
    grade: Grade
    error: str | None = None
    repeats: list[bool] = field(default_factory=list)  # verdict of each grading pass

    @property
    def passed(self) -> bool:
        return self.error is None and self.grade.passed

    @property
    def pass_fraction(self) -> float:
        return sum(self.repeats) / len(self.repeats) if self.repeats else float(self.passed)


def _value(spec: AssertSpec, case: Case, base: Path) -> Any:
    value = spec.value
    if is_ref(value) and spec.type not in KEEP_REF:
        path = ref_path(value, base)
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise Misconfigured(f"cannot read {value}: {exc}") from None
    return render_value(value, case.vars)


async def grade_one(spec: AssertSpec, ctx_base: dict[str, Any]) -> Grade:
    if spec.type == "assert-set":
        return await grade_all(spec.children, spec.threshold, ctx_base)
    named = spec.provider or ctx_base["case"].options.get("provider")
    judge = ctx_base["judge"]
    if named is not None and hasattr(judge, "using"):  # a grader named in the suite
        ctx_base = {**ctx_base, "judge": judge.using(named)}
    ctx = Context(spec=spec, value=_value(spec, ctx_base["case"], ctx_base["base"]), **ctx_base)
    result = handler(spec.type)(ctx)
    grade = await result if inspect.isawaitable(result) else result
    grade.assertion = spec.raw
    return grade


async def grade_all(
    specs: list[AssertSpec],
    threshold: float | None,
    ctx_base: dict[str, Any],
    cached: dict[int, Grade] | None = None,
) -> Grade:
    if not specs:
        return Grade(True, 1.0, "No assertions")
    total = weight_sum = 0.0
    failed: str | None = None
    named: dict[str, float] = {}
    named_weight: dict[str, float] = {}
    tokens: dict[str, int] = {}
    components: list[Grade] = []
    for spec in specs:
        grade = cached.get(id(spec)) if cached is not None else None
        if grade is None:
            grade = await grade_one(spec, ctx_base)
            if cached is not None and not spec.judged:
                cached[id(spec)] = grade
        # weight 0 is promptfoo's metric-only assertion: a named score, never a verdict.
        metric_only = spec.weight == 0
        total += grade.score * spec.weight
        weight_sum += spec.weight
        components.append(grade)
        if spec.metric:
            w = 1.0 if metric_only else spec.weight
            named[spec.metric] = named.get(spec.metric, 0.0) + grade.score * w
            named_weight[spec.metric] = named_weight.get(spec.metric, 0.0) + w
        for key, n in grade.tokens.items():
            tokens[key] = tokens.get(key, 0) + n
        if not grade.passed and not metric_only:
            failed = grade.reason
    score = total / weight_sum if weight_sum > 0 else 0.0
    passed, reason = failed is None, failed or "All assertions passed"
    if threshold is not None:
        passed = score >= threshold
        reason = f"Aggregate score {score:.2f} {'≥' if passed else '<'} {threshold:g} threshold"
    named_scores = {k: (v / named_weight[k] if named_weight[k] else 0.0) for k, v in named.items()}
    return Grade(passed, score, reason, None, named_scores, tokens, components)


async def grade_case(
    case: Case,
    output: Output,
    *,
    prompt: str,
    provider: Provider,
    base: Path,
    judge: Judge | None,
    repeat: int = 1,
) -> CaseGrade:
    if output.error is not None:
        return CaseGrade(Grade(False, 0.0, output.error), error=output.error)
    ctx_base = {
        "output": output,
        "case": case,
        "prompt": prompt,
        "provider": provider,
        "base": base,
        "judge": judge,
    }
    judged = any(s.judged for s in case.asserts)
    passes = repeat if judged else 1
    cached: dict[int, Grade] = {}
    grades: list[Grade] = []
    try:
        for _ in range(passes):
            grades.append(await grade_all(case.asserts, case.threshold, ctx_base, cached))
    except Misconfigured as exc:
        return CaseGrade(Grade(False, 0.0, str(exc)), error=str(exc))
    verdicts = [g.passed for g in grades]
    majority = sum(verdicts) * 2 > len(verdicts)
    chosen = next(g for g in grades if g.passed == majority) if majority in verdicts else grades[0]
    return CaseGrade(chosen, repeats=verdicts)
