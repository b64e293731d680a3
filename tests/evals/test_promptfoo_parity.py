"""bounded's verdicts equal promptfoo's own, assertion by assertion, on fixed outputs.

promptfoo's verdicts were recorded once with the npm package (fixtures/promptfoo_verdicts/
make_fixture.py says how); here bounded grades the same outputs with the same assertions.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bounded.evals.assertions.base import Grade
from bounded.evals.asserts import parse_asserts
from bounded.evals.grading import grade_case
from bounded.evals.model import Case, Output, Provider
from bounded.evals.yamlio import Lines

FIXTURE = Path(__file__).parent / "fixtures" / "promptfoo_verdicts"
CASES = yaml.safe_load((FIXTURE / "cases.yaml").read_text())
VERDICTS = json.loads((FIXTURE / "verdicts.json").read_text())["verdicts"]
# js-rouge tokenizes with its own Penn Treebank rules; scores agree to a few hundredths on
# prose, verdicts exactly.
APPROX = {"rouge-n", "not-rouge-n"}


def _flat(grade: Grade) -> list[Grade]:
    out = []
    for c in grade.components:
        out.append(c)
        out.extend(c.components)
    return out


def _weights(asserts: list[dict[str, Any]]) -> list[float]:
    out = []
    for a in asserts:
        out.append(float(a.get("weight", 1)))
        out.extend(float(c.get("weight", 1)) for c in a.get("assert", []))
    return out


@pytest.mark.parametrize("verdict", VERDICTS, ids=lambda v: f"case{v['case']}")
def test_same_verdict_as_promptfoo(verdict: dict[str, Any]) -> None:
    raw = CASES[verdict["case"]]
    asserts = parse_asserts(raw["assert"], FIXTURE, Lines(), (None, None))
    case = Case(
        vars={"output": raw["output"], **raw.get("vars", {})},
        asserts=asserts,
        threshold=raw.get("threshold"),
        raw=raw,
    )
    result = asyncio.run(
        grade_case(
            case,
            Output(text=verdict["output"]),
            prompt=verdict["output"],
            provider=Provider("echo", "echo", "echo"),
            base=FIXTURE,
            judge=None,
        )
    )
    assert result.error is None, result.error
    assert result.passed == verdict["pass"], result.grade.reason
    types = {a["type"] for a in raw["assert"]}
    tolerance = 0.05 if types & APPROX else 1e-6
    assert result.grade.score == pytest.approx(verdict["score"], abs=tolerance)
    ours = _flat(result.grade)
    assert len(ours) == len(verdict["components"])
    for mine, theirs, weight in zip(
        ours, verdict["components"], _weights(raw["assert"]), strict=True
    ):
        if weight:  # promptfoo marks weight-0 (metric-only) results as passed
            assert mine.passed == theirs["pass"], (theirs["type"], mine.reason)
    for name, value in verdict["namedScores"].items():
        assert result.grade.named_scores[name] == pytest.approx(value)
