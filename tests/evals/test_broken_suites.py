"""A broken suite exits 1 with the file, the line and a hint, before any call, and the
store is left as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bounded.store.db import Database
from tests.evals.conftest import bounded, bounded_yaml

GOOD_TEST = "tests:\n  - vars: {language: French, input: Hello world}\n    assert:\n"


def _suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text(
        "prompts: ['Translate to {{language}}: {{input}}']\nproviders: [openai:gpt-4.1]\n" + body
    )
    return path


CASES = {
    "yaml error": (
        GOOD_TEST + "      - type: contains\n        value: 'Bonjour\n",
        "promptfooconfig.yaml:",
        "YAML error",
        "hint:",
    ),
    "unknown assertion type": (
        GOOD_TEST
        + "      - type: contains\n        value: Bonjour\n"
        + "      - type: icontain\n        value: x\n",
        "promptfooconfig.yaml:8",
        "unknown assertion type 'icontain'",
        "did you mean 'icontains'",
    ),
    "missing file": (
        "tests: file://cases/missing.csv\n",
        "promptfooconfig.yaml",
        "file not found: file://cases/missing.csv",
        "relative to the suite's folder",
    ),
    "missing var file": (
        "tests:\n  - vars: {language: French, input: file://nope.txt}\n",
        "promptfooconfig.yaml:4",
        "file not found: file://nope.txt",
        "hint:",
    ),
    "csv bad header": (
        "tests: file://cases.csv\n",
        "cases.csv:1",
        "unknown special column '__expect'",
        "__expected",
    ),
    "csv empty header cell": (
        "tests: file://empty.csv\n",
        "empty.csv:1",
        "column 2 of the CSV header is empty",
        "names each column",
    ),
    "unknown provider": (
        "providers: [anthropic:messages:claude]\n"
        + GOOD_TEST
        + "      - {type: contains, value: x}\n",
        "promptfooconfig.yaml",
        "unknown provider 'anthropic:messages:claude'",
        "openai:chat:NAME",
    ),
    "provider not in bounded.yaml": (
        "providers: [openai:chat:gpt-5]\n" + GOOD_TEST + "      - {type: contains, value: x}\n",
        "promptfooconfig.yaml",
        "no feature or model named 'gpt-5'",
        "defined: gpt-4.1",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_broken_suite_exits_1_with_where_and_hint(tmp_path: Path, upstream: Any, name: str) -> None:
    body, where, message, hint = CASES[name]
    if "providers:" in body:  # the case's own providers replace the default line
        suite = tmp_path / "promptfooconfig.yaml"
        suite.write_text("prompts: ['Translate to {{language}}: {{input}}']\n" + body)
    else:
        suite = _suite(tmp_path, body)
    (tmp_path / "cases.csv").write_text("language,input,__expect\nFrench,Hello world,Bonjour\n")
    (tmp_path / "empty.csv").write_text("language,,input\nFrench,x,Hello world\n")
    config = bounded_yaml(tmp_path, upstream.base_url)
    result = bounded("eval", "run", str(suite), "-c", str(config))
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert where in text and message in text and hint in text, text
    assert "Traceback" not in text
    assert upstream.count("good") == 0  # nothing was called
    db = Database.open(f"sqlite:///{tmp_path / 'bounded.db'}")
    assert db.execute("SELECT COUNT(*) AS n FROM eval_runs")[0]["n"] == 0
    assert db.execute("SELECT COUNT(*) AS n FROM eval_cases")[0]["n"] == 0
    db.close()


def test_javascript_assertion_is_refused_naming_the_test(tmp_path: Path, upstream: Any) -> None:
    suite = _suite(
        tmp_path,
        "tests:\n  - description: length check\n    vars: {language: French, input: Hello world}\n"
        "    assert:\n      - type: javascript\n        value: output.length < 50\n",
    )
    config = bounded_yaml(tmp_path, upstream.base_url)
    result = bounded("eval", "run", str(suite), "-c", str(config))
    # A broken suite, not a failed gate: exit 1 at load, before any call or stored row.
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "javascript assertions are not supported" in text and "'length check'" in text
    assert "promptfooconfig.yaml:7" in text and "type: python" in text
    assert upstream.count("good") == 0
    db = Database.open(f"sqlite:///{tmp_path / 'bounded.db'}")
    assert db.execute("SELECT COUNT(*) AS n FROM eval_runs")[0]["n"] == 0
    db.close()
