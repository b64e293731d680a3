"""`bounded eval run` end to end: promptfoo's own getting-started suite, unchanged, through
the real gateway (in-process, and a served one at --url) against a phrase-book stand-in."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from bounded.evals.store import latest_passing_run, list_runs
from bounded.store.db import Database
from tests.evals.conftest import bounded, bounded_yaml, env

SUITE = Path(__file__).parent / "fixtures" / "getting-started" / "promptfooconfig.yaml"


def test_promptfoo_docs_suite_runs_unchanged_and_exit_code_follows_the_threshold(
    tmp_path: Path, upstream: Any
) -> None:
    config = bounded_yaml(tmp_path, upstream.base_url)
    # 2 prompts x 2 providers x 2 tests; o4-mini ("sloppy") fails both Spanish cases: 6/8.
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None, PROMPTFOO_FAILED_TEST_EXIT_CODE=None):
        strict = bounded(
            "eval", "run", str(SUITE), "-c", str(config), "-o", str(tmp_path / "r.json")
        )
    assert strict.exit_code == 100, strict.output
    assert "6 passed, 2 failed, 0 errors (75.0%)" in strict.output
    with env(PROMPTFOO_PASS_RATE_THRESHOLD="70"):
        lenient = bounded("eval", "run", str(SUITE), "-c", str(config))
    assert lenient.exit_code == 0, lenient.output
    with env(PROMPTFOO_PASS_RATE_THRESHOLD="80"):
        assert bounded("eval", "run", str(SUITE), "-c", str(config)).exit_code == 100
    with env(PROMPTFOO_PASS_RATE_THRESHOLD="80", PROMPTFOO_FAILED_TEST_EXIT_CODE="3"):
        assert bounded("eval", "run", str(SUITE), "-c", str(config)).exit_code == 3

    # every case went through the gateway to the upstream model its provider names
    assert upstream.count("good") == 4 * 4 and upstream.count("sloppy") == 4 * 4
    report = json.loads((tmp_path / "r.json").read_text())
    stats = report["results"]["stats"]
    assert (stats["successes"], stats["failures"], stats["errors"]) == (6, 2, 0)
    assert stats["tokenUsage"]["numRequests"] == 8 and stats["tokenUsage"]["total"] > 80
    failing = [r for r in report["results"]["results"] if not r["success"]]
    assert {r["provider"]["id"] for r in failing} == {"openai:o4-mini"}
    assert {r["vars"]["language"] for r in failing} == {"Spanish"}
    one = failing[0]
    assert one["response"]["output"] == "Lo siento, no sé."
    assert one["gradingResult"]["componentResults"][0]["assertion"]["type"] == "icontains"
    assert one["bounded"]["trace_id"]  # the gateway's trace id: the ledger row of this case

    db = Database.open(f"sqlite:///{tmp_path / 'bounded.db'}")
    runs = list_runs(db)
    assert len(runs) == 4 and [r.passed for r in runs] == [False, False, True, False]
    # a ledger row per case, tagged with the run's session
    rows = db.execute("SELECT COUNT(*) AS n FROM ledger WHERE session_id LIKE 'eval:%'")
    assert rows[0]["n"] == 32
    db.close()


def test_reports_baseline_and_store(tmp_path: Path, upstream: Any) -> None:
    features = {
        "translate": {
            "owner": "i18n",
            "route": {"targets": ["gpt-4.1"]},
            "eval": {"min_pass_rate": 0.5, "max_regression": 0.1},
        }
    }
    config = bounded_yaml(tmp_path, upstream.base_url, features)
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        first = bounded("eval", "run", str(SUITE), "-c", str(config), "--target", "translate",
                        "-o", str(tmp_path / "base.json"))  # fmt: skip
    assert first.exit_code == 0, first.output
    db = Database.open(f"sqlite:///{tmp_path / 'bounded.db'}")
    base = latest_passing_run(db, "translate")
    assert base is not None and base.pass_rate == 1.0

    # the feature now routes to the sloppy model: Spanish cases newly fail
    features["translate"]["route"] = {"targets": ["o4-mini"]}
    bounded_yaml(tmp_path, upstream.base_url, features)
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        second = bounded(
            "eval", "run", str(SUITE), "-c", str(config), "--target", "translate",
            "--baseline", base.id, "--junit", str(tmp_path / "j.xml"),
            "--html", str(tmp_path / "r.html"), "-o", str(tmp_path / "r.json"),
        )  # fmt: skip
    assert second.exit_code == 100, second.output
    assert "4 newly failing, 0 newly passing" in second.output
    assert "pass rate fell 50.0%" in second.output
    assert latest_passing_run(db, "translate") == base  # the failing run is not a pass

    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["bounded"]["baseline"]["newly_failing"]) == 4
    assert all("Spanish" in k for k in report["bounded"]["baseline"]["newly_failing"])
    suites = ET.parse(tmp_path / "j.xml").getroot().findall("testsuite")
    assert len(suites) == 4  # one per provider label and prompt (2 x 2)
    assert sum(int(s.get("failures", 0)) for s in suites) == 4
    page = (tmp_path / "r.html").read_text()
    assert "gate failed" in page and page.count("newly failing</span>") == 4
    assert "Lo siento, no sé." in page and "¿Dónde está la biblioteca?" in page  # side by side
    assert "<script" not in page and "http" not in page.split("<body>")[1].split("run ")[0]

    shown = bounded("eval", "show", base.id, "-c", str(config))
    assert shown.exit_code == 0 and "gate passed" in shown.output
    listed = bounded("eval", "list", "-c", str(config), "--feature", "translate")
    assert listed.exit_code == 0 and base.id in listed.output
    assert bounded("eval", "show", "ev_nope", "-c", str(config)).exit_code == 1
    db.close()


def test_cost_limit_of_the_feature_gates_the_run(tmp_path: Path, upstream: Any) -> None:
    # 8 cases at 10 prompt + 3-4 completion tokens, $1/M in and $2/M out: ~$0.00014 in all
    features = {
        "translate": {
            "owner": "i18n",
            "route": {"targets": ["gpt-4.1"]},
            "eval": {"min_pass_rate": 0.0, "max_cost_usd": 0.0001},
        }
    }
    config = bounded_yaml(tmp_path, upstream.base_url, features)
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        over = bounded("eval", "run", str(SUITE), "-c", str(config), "--target", "translate")
    assert over.exit_code == 100, over.output
    assert "is over $0.000100" in over.output
    features["translate"]["eval"]["max_cost_usd"] = 0.01
    bounded_yaml(tmp_path, upstream.base_url, features)
    with env(PROMPTFOO_PASS_RATE_THRESHOLD=None):
        under = bounded("eval", "run", str(SUITE), "-c", str(config), "--target", "translate")
    assert under.exit_code == 0, under.output
