"""Judged assertions through a judge model named in bounded.yaml, repeated with --repeat:
the spread of the judge's verdicts is shown, and a drop against the baseline counts as a
regression only beyond that spread."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response

from tests.evals.conftest import bounded, bounded_yaml, env

SUITE = """
description: judged translations
prompts: ['Translate to {{language}}: {{input}}']
providers: [openai:chat:translate]
tests:
  - vars: {language: French, input: Hello world}
    assert: [{type: llm-rubric, value: is a correct French translation}]
  - vars: {language: Spanish, input: 'Where is the library?'}
    assert: [{type: llm-rubric, value: is a correct Spanish translation}]
"""


def judge(spanish: str) -> Any:
    """A judge model: French always passes; Spanish by ``spanish``: "pass", "fail", or
    "noisy" (fail, pass, fail, ... call after call)."""
    calls = {"n": 0}

    async def behave(request: Request, body: dict[str, Any]) -> Response:
        prompt = " ".join(m["content"] for m in body["messages"])
        verdict = True
        if "Spanish" in prompt:
            verdict = {"pass": True, "fail": False}.get(spanish, calls["n"] % 2 == 1)
            calls["n"] += 1
        content = json.dumps({"reason": "judged", "pass": verdict, "score": float(verdict)})
        payload = {
            "id": "j", "object": "chat.completion", "created": 0, "model": "grader",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
        }  # fmt: skip
        return Response(orjson.dumps(payload), media_type="application/json")

    return behave


def _setup(tmp_path: Path, upstream: Any) -> tuple[Path, Path]:
    features = {
        "translate": {
            "owner": "i18n",
            "route": {"targets": ["gpt-4.1"]},
            "eval": {"min_pass_rate": 0.5, "max_regression": 0.0},
        }
    }
    config = bounded_yaml(tmp_path, upstream.base_url, features)
    data = yaml.safe_load(config.read_text())
    data["models"]["grader"] = {"provider": "up", "model": "grader"}
    data["evals"] = {"judge": "grader"}
    config.write_text(yaml.safe_dump(data))
    suite = tmp_path / "judged.yaml"
    suite.write_text(SUITE)
    return config, suite


def _run(config: Path, suite: Path, *extra: str) -> Any:
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        return bounded("eval", "run", str(suite), "-c", str(config), *extra)


def test_regression_counts_only_beyond_the_judge_spread(tmp_path: Path, upstream: Any) -> None:
    config, suite = _setup(tmp_path, upstream)
    upstream.always("grader", judge("pass"))
    assert _run(config, suite, "-o", str(tmp_path / "base.json")).exit_code == 0
    base = str(tmp_path / "base.json")

    # a noisy judge, graded 3 times: Spanish fails 2 of 3, its drop is within the spread
    upstream.always("grader", judge("noisy"))
    noisy = _run(config, suite, "--baseline", base, "--repeat", "3", "-o", str(tmp_path / "n.json"))
    assert noisy.exit_code == 0, noisy.output
    assert "judge spread ±50.0 pts" in noisy.output and "1 within judge noise" in noisy.output
    report = json.loads((tmp_path / "n.json").read_text())
    spanish = next(r for r in report["results"]["results"] if r["vars"]["language"] == "Spanish")
    assert spanish["bounded"]["repeats"] == [False, True, False] and not spanish["success"]
    assert upstream.count("grader") == 2 + 2 * 3  # baseline once each; then three times each

    # the same drop from a judge that agrees with itself is a regression
    upstream.always("grader", judge("fail"))
    steady = _run(config, suite, "--baseline", base, "--repeat", "3")
    assert steady.exit_code == 100, steady.output
    assert "pass rate fell 50.0%" in steady.output and "judge spread 0.0%" in steady.output


def test_judged_assertion_without_a_judge_is_an_error_that_says_so(
    tmp_path: Path, upstream: Any
) -> None:
    config, suite = _setup(tmp_path, upstream)
    data = yaml.safe_load(config.read_text())
    del data["evals"]
    config.write_text(yaml.safe_dump(data))
    result = _run(config, suite)
    assert result.exit_code == 100
    text = " ".join(result.output.split())
    assert "needs a judge model: set `evals.judge`" in text and "too weak to judge" in text


def test_a_grader_named_in_the_suite_is_used(tmp_path: Path, upstream: Any) -> None:
    config, suite = _setup(tmp_path, upstream)
    data = yaml.safe_load(config.read_text())
    del data["evals"]  # no run-wide judge: the suite names its own
    config.write_text(yaml.safe_dump(data))
    suite.write_text(
        SUITE.replace(
            "tests:", "defaultTest:\n  options: {provider: openai:chat:grader}\ntests:", 1
        )
    )
    upstream.always("grader", judge("pass"))
    result = _run(config, suite)
    assert result.exit_code == 0, result.output
    assert upstream.count("grader") == 2
