"""The rest of the promptfoo config surface, run by bounded: tests from CSV (with
__expected), JSONL and YAML files, defaultTest, vars from file://, scenarios, chat-format
JSON prompts, python files, similar (MiniLM), context-faithfulness (the groundedness
guard); and the same suite against a served gateway at --url, runs stored in PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bounded.evals.store import get_run, latest_passing_run, list_runs, run_cases
from bounded.store.db import Database
from tests.conftest import ADMIN_KEY, serve_in_thread
from tests.evals.conftest import bounded, bounded_yaml, env

SUITE = """
description: everything at once
prompts:
  - file://chat.json
providers:
  - id: openai:chat:gpt-4.1
    config: {temperature: 0}
defaultTest:
  vars: {tone: plain}
  assert:
    - {type: not-icontains, value: as an ai}
tests:
  - file://cases.csv
  - file://more.jsonl
  - description: grounded answer
    vars:
      language: French
      input: Hello world
      context: file://context.txt
    assert:
      - {type: similar, value: Bonjour le monde, threshold: 0.8}
      - {type: context-faithfulness, threshold: 0.2}
      - {type: python, value: file://check.py}
scenarios:
  - config:
      - vars: {language: French}
      - vars: {language: Spanish}
    tests:
      - description: scenario hello
        vars: {input: Hello world}
        assert: [{type: contains-any, value: "Bonjour, Hola"}]
"""
CHAT = '[{"role": "system", "content": "Tone: {{tone}}."},\n {"role": "user", "content": "Translate to {{language}}: {{input}}"}]'  # noqa: E501 (file contents, as written)
CSV = 'language,input,__expected1,__expected2,__description\nFrench,Hello world,contains: Bonjour,"similar(0.9): Bonjour le monde",csv french\nSpanish,Where is the library?,icontains: biblioteca,not-contains: Bonjour,csv spanish\n'  # noqa: E501 (file contents, as written)
JSONL = '{"description": "jsonl", "vars": {"language": "Spanish", "input": "Where is the library?"}, "assert": [{"type": "regex", "value": "^¿Dónde"}]}\n'  # noqa: E501 (file contents, as written)
CHECK = 'def get_assert(output, context):\n    return {"pass": context["vars"]["tone"] == "plain", "score": 1.0, "reason": "tone var seen"}\n'  # noqa: E501 (file contents, as written)


def _write(tmp_path: Path) -> Path:
    (tmp_path / "chat.json").write_text(CHAT)
    (tmp_path / "cases.csv").write_text(CSV)
    (tmp_path / "more.jsonl").write_text(JSONL)
    (tmp_path / "context.txt").write_text("Hello world is Bonjour le monde in French.")
    (tmp_path / "check.py").write_text(CHECK)
    suite = tmp_path / "promptfooconfig.yaml"
    suite.write_text(SUITE)
    return suite


def test_the_config_surface_runs(tmp_path: Path, upstream: Any) -> None:
    suite = _write(tmp_path)
    config = bounded_yaml(tmp_path, upstream.base_url)
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        result = bounded(
            "eval", "run", str(suite), "-c", str(config), "-o", str(tmp_path / "r.json")
        )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "r.json").read_text())["results"]["results"]
    names = [r["testCase"]["description"] for r in rows]
    assert names == ["csv french", "csv spanish", "jsonl", "grounded answer",
                     "scenario hello", "scenario hello"]  # fmt: skip
    # defaultTest's assertion ran first on every case; its var reached the chat template
    assert all(r["gradingResult"]["componentResults"][0]["assertion"]["type"] == "not-icontains"
               for r in rows)  # fmt: skip
    sent = [r.body for r in upstream.received if r.model == "good"]
    assert sent[0]["messages"][0] == {"role": "system", "content": "Tone: plain."}
    assert sent[0]["temperature"] == 0
    grounded = next(r for r in rows if r["testCase"]["description"] == "grounded answer")
    similar, faithful, python = grounded["gradingResult"]["componentResults"][1:]
    assert (
        similar["score"] > 0.99 and faithful["score"] > 0.2 and python["reason"] == "tone var seen"
    )
    assert {
        r["vars"]["language"] for r in rows if r["testCase"]["description"] == "scenario hello"
    } == {"French", "Spanish"}


def test_a_served_gateway_at_url_and_runs_in_postgres(
    tmp_path: Path, upstream: Any, postgres_url: str
) -> None:
    from bounded.gateway.app import Gateway
    from tests.conftest import make_config

    suite = _write(tmp_path)
    config = bounded_yaml(tmp_path, upstream.base_url)
    data = json.loads(json.dumps(__import__("yaml").safe_load(config.read_text())))
    data["server"]["store"] = postgres_url
    config.write_text(__import__("yaml").safe_dump(data))
    db = Database.open(postgres_url)
    db.execute("DELETE FROM eval_cases")
    db.execute("DELETE FROM eval_runs")
    gateway = Gateway(make_config(data, postgres_url), db=db, admin_key=ADMIN_KEY)
    with serve_in_thread(gateway.app()) as url, env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        result = bounded("eval", "run", str(suite), "-c", str(config), "--url", url,
                         "--api-key", ADMIN_KEY, "-j", "8")  # fmt: skip
        wrong_key = bounded("eval", "run", str(suite), "-c", str(config), "--url", url,
                            "--api-key", "nope", "--no-store")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert wrong_key.exit_code == 100 and "HTTP 401" in wrong_key.output
    (run,) = list_runs(db)
    assert run.passed and run.successes == 6 and get_run(db, run.id) == run
    assert len(run_cases(db, run.id)) == 6
    assert latest_passing_run(db, "translate") is None  # a model, not the feature, was run
    db.close()
