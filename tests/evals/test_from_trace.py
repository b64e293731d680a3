"""`bounded eval add-from-trace`: a case from a real request's stored trace text, which
then runs (and passes against the same answer) as part of a suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.evals.conftest import bounded, bounded_yaml, env

SUITE = """
prompts: ['Translate to {{language}}: {{input}}']
providers: [openai:chat:translate]
tests:
  - vars: {language: French, input: Hello world}
"""
REPLAY = """
prompts: ['{{input}}']
providers: [openai:chat:translate]
tests: file://from-traffic.yaml
"""


def test_a_case_from_a_trace_runs_in_a_suite(tmp_path: Path, upstream: Any) -> None:
    features = {"translate": {"owner": "i18n", "route": {"targets": ["gpt-4.1"]}}}
    config = bounded_yaml(tmp_path, upstream.base_url, features)
    (tmp_path / "s.yaml").write_text(SUITE)
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        first = bounded("eval", "run", str(tmp_path / "s.yaml"), "-c", str(config),
                        "-o", str(tmp_path / "r.json"))  # fmt: skip
    assert first.exit_code == 0, first.output
    trace = json.loads((tmp_path / "r.json").read_text())["results"]["results"][0]["bounded"]
    tests = tmp_path / "from-traffic.yaml"
    tests.write_text("# cases from production traffic\n")
    added = bounded("eval", "add-from-trace", trace["trace_id"], "--suite", str(tests),
                    "-c", str(config))  # fmt: skip
    assert added.exit_code == 0, added.output
    text = tests.read_text()
    assert text.startswith("# cases from production traffic")  # comments kept
    (case,) = yaml.safe_load(text)
    assert case["vars"] == {"input": "Translate to French: Hello world"}
    assert case["metadata"]["reference"] == "Bonjour le monde"
    assert case["assert"][0]["type"] == "similar"
    (tmp_path / "replay.yaml").write_text(REPLAY)
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        replay = bounded("eval", "run", str(tmp_path / "replay.yaml"), "-c", str(config))
    assert replay.exit_code == 0, replay.output
    missing = bounded("eval", "add-from-trace", "nope", "--suite", str(tests), "-c", str(config))
    assert missing.exit_code == 1 and "no trace 'nope'" in missing.output
