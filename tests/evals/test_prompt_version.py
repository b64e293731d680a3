"""--prompt-version: the gateway renders that version of the feature's prompt with the
case's vars, the run is stored under it, and a release gate finds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bounded.evals.store import latest_passing_run
from bounded.store.db import Database
from tests.evals.conftest import bounded, bounded_yaml, env

SUITE = """
prompts: ['Translate to {{language}}: {{input}}']
providers: [openai:chat:translate]
tests:
  - vars: {language: French, input: Hello world, audience: travellers}
    assert: [{type: contains, value: Bonjour}]
"""


def test_candidate_version_is_evaluated_and_found_by_the_gate(
    tmp_path: Path, upstream: Any
) -> None:
    features = {"translate": {"owner": "i18n", "route": {"targets": ["gpt-4.1"]}}}
    config = bounded_yaml(tmp_path, upstream.base_url, features)
    (tmp_path / "v.yaml").write_text("system: 'You translate for {{ audience }}.'\n")
    for _ in range(2):  # versions 1 and 2 (identical content makes no new one: vary it)
        pushed = bounded("prompt", "push", "translate", str(tmp_path / "v.yaml"), "-c", str(config))
        assert pushed.exit_code == 0, pushed.output
        (tmp_path / "v.yaml").write_text("system: 'You translate carefully for {{ audience }}.'\n")
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        result = bounded("eval", "run", str(suite), "-c", str(config), "--prompt-version", "2")
        missing = bounded("eval", "run", str(suite), "-c", str(config), "--prompt-version", "9")
    assert result.exit_code == 0, result.output
    assert missing.exit_code == 100, missing.output  # no version 9: the case errs
    assert "1 errors" in missing.output
    sent = [r.body["messages"][0] for r in upstream.received if r.model == "good"]
    assert sent[0] == {"role": "system", "content": "You translate carefully for travellers."}
    db = Database.open(f"sqlite:///{tmp_path / 'bounded.db'}")
    found = latest_passing_run(db, "translate", prompt_version="2")
    assert found is not None and found.prompt_version == "2"
    assert latest_passing_run(db, "translate", prompt_version="1") is None
    db.close()
