"""A run as promptfoo's ``-o results.json`` writes it, so tools that read promptfoo's
output read bounded's: ``results.stats.{successes,failures,errors,tokenUsage}`` and
``results.results[]`` with each case's vars, output, score and assertion results.
bounded's additions (the gate, the baseline comparison, judge repeats) sit under
``bounded`` keys that promptfoo readers ignore.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bounded.evals.gate import Comparison, Stats, Verdict
from bounded.evals.model import Suite
from bounded.evals.runner import CaseResult

FAILURE_ASSERT, FAILURE_ERROR = 1, 2  # promptfoo's ResultFailureReason


def result_json(r: CaseResult, index: int) -> dict[str, Any]:
    grade = r.graded.grade
    out = r.output
    return {
        "id": f"{index}",
        "promptIdx": r.prompt_idx,
        "testIdx": r.test_idx,
        "testCase": {
            "description": r.case.description,
            "vars": r.case.vars,
            "assert": [a.raw for a in r.case.asserts],
        },
        "promptId": r.prompt.label,
        "provider": {"id": r.provider.id, "label": r.provider.label},
        "prompt": {"raw": r.rendered, "label": r.prompt.label},
        "vars": r.case.vars,
        "response": None
        if out.error
        else {
            "output": out.graded_value(),
            "tokenUsage": {**out.tokens, "numRequests": 1},
            "finishReason": out.finish_reason,
            "cost": out.cost,
        },
        "error": r.error,
        "success": r.passed,
        "score": grade.score,
        "latencyMs": round(out.latency_ms),
        "cost": out.cost,
        "gradingResult": grade.as_json(),
        "namedScores": grade.named_scores,
        "failureReason": 0 if r.passed else (FAILURE_ERROR if r.error else FAILURE_ASSERT),
        "metadata": r.case.metadata,
        "bounded": {
            "key": r.key(),
            "trace_id": out.trace_id,
            "route": out.route,
            "repeats": r.graded.repeats,
        },
    }


def report(
    run_id: str,
    suite: Suite,
    results: Sequence[CaseResult],
    s: Stats,
    verdict: Verdict,
    comparison: Comparison | None,
    meta: dict[str, Any],
) -> dict[str, Any]:
    prompts = []
    for pi, prompt in enumerate(suite.prompts):
        for provider in suite.providers:
            mine = [r for r in results if r.prompt_idx == pi and r.provider is provider]
            prompts.append(
                {
                    "raw": prompt.raw,
                    "label": prompt.label,
                    "provider": provider.label,
                    "metrics": {
                        "score": sum(r.graded.grade.score for r in mine),
                        "testPassCount": sum(r.passed for r in mine),
                        "testFailCount": sum(not r.passed and r.error is None for r in mine),
                        "testErrorCount": sum(r.error is not None for r in mine),
                        "cost": sum(r.output.cost for r in mine),
                        "totalLatencyMs": round(sum(r.output.latency_ms for r in mine)),
                    },
                }
            )
    return {
        "evalId": run_id,
        "results": {
            "version": 3,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(meta["created_at"])),
            "prompts": prompts,
            "results": [result_json(r, i) for i, r in enumerate(results)],
            "stats": {
                "successes": s.successes,
                "failures": s.failures,
                "errors": s.errors,
                "tokenUsage": s.tokens,
            },
        },
        "config": {
            "description": suite.description,
            "prompts": [p.raw for p in suite.prompts],
            "providers": [p.id for p in suite.providers],
        },
        "shareableUrl": None,
        "bounded": {
            "run_id": run_id,
            **meta,
            "pass_rate": s.pass_rate,
            "cost_usd": s.cost,
            "latency_p95_ms": s.latency_p95_ms,
            "judge_spread": s.spread,
            "gate": {"passed": verdict.passed, "reasons": verdict.reasons, "rules": verdict.rules},
            "baseline": None
            if comparison is None
            else {
                "run_id": comparison.baseline_id,
                "baseline_pass_rate": comparison.baseline_rate,
                "pass_rate": comparison.current_rate,
                "newly_failing": comparison.newly_failing,
                "newly_passing": comparison.newly_passing,
                "within_judge_noise": comparison.noisy,
            },
        },
    }
