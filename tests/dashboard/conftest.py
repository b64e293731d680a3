"""A gateway with real traffic behind it, and a headless Chromium to look at its dashboard.

Traffic goes through the real gateway to the stand-in upstream (tests/conftest.py): answers,
upstream failures, outcomes, an eval run, a release with its arms, an incident with a delta
and a drift alert. Screenshots land in build/screenshots/ (gitignored) for people to look at.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bounded.gateway.app import Gateway
from bounded.store.db import Database
from tests.conftest import ADMIN_KEY, make_config, serve_in_thread
from tests.standins.faulty_upstream import FaultyUpstream, ok, status

CHROMIUM = os.environ.get("BOUNDED_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).parents[2] / "build" / "screenshots"

SUITE = """
description: support smoke
prompts: ["{{question}}"]
providers: ["openai:chat:support-answer"]
tests:
  - description: greets
    vars: {question: hello there}
    assert: [{type: contains, value: stand-in}]
  - description: refund policy
    vars: {question: can I get a refund}
    assert: [{type: contains, value: refund}]
"""


def config_data(base_url: str) -> dict[str, Any]:
    return {
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "sk-standin"}},
        "models": {
            "gpt-main": {"provider": "up", "model": "primary", "price": {"input": 2.5,
                                                                         "output": 10}},
            "gpt-backup": {"provider": "up", "model": "backup", "price": {"input": 0.15,
                                                                          "output": 0.6}},
        },
        "features": {
            "support-answer": {
                "owner": "support-team",
                "team": "support",
                "description": "Answers customer questions.",
                "risk_tier": "medium",
                "route": {"targets": ["gpt-main", "gpt-backup"], "retry": {"attempts": 1}},
                "budget": {"amount_usd": 5, "period": "day"},
                "health": {"error_rate": {"max": 0.02}},
            },
            "invoice-extract": {
                "owner": "finance-eng",
                "team": "finance",
                "risk_tier": "high",
                "route": {"targets": ["gpt-backup"]},
                "eval": {"min_pass_rate": 0.9},
            },
            "draft-reply": {"owner": "support-team", "risk_tier": "low",
                            "route": {"targets": ["gpt-backup"]}},
        },
        "teams": {"finance": {"budget": {"amount_usd": 20, "period": "month", "mode": "soft"}}},
        "breaker": {"window": 10, "min_calls": 4, "failure_rate": 0.5, "cooldown_s": 600},
        "alerts": {"window_s": 3600, "min_samples": 5},
    }  # fmt: skip


@dataclass
class Site:
    url: str
    gateway: Gateway
    db: Database
    trace_ids: list[str]
    failed_trace: str
    incident: str
    eval_run: str


def _chat(url: str, feature: str, text: str = "hi") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": feature, "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )


@pytest.fixture(scope="module")
def site(standin: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from bounded.evals.service import EvalRequest, execute
    from bounded.governance.alerts import check_drift
    from bounded.governance.incidents import Incidents
    from bounded.governance.tiers import controls
    from bounded.releases.store import ReleaseStore

    folder = tmp_path_factory.mktemp("dashboard")
    store = f"sqlite:///{folder / 'bounded.db'}"
    standin.forget()
    standin.always("backup", ok("hello from the stand-in, about your refund"))
    standin.always("primary", ok("hello from the stand-in"))
    db = Database.open(store)
    config = make_config(config_data(standin.base_url), store)
    gateway = Gateway(config, db=db, admin_key=ADMIN_KEY)
    with serve_in_thread(gateway.app()) as url:
        traces = []
        for i in range(24):
            r = _chat(url, "support-answer", f"question {i}")
            assert r.status_code == 200, r.text
            traces.append(r.headers["x-bounded-trace-id"])
        for _ in range(6):
            assert _chat(url, "invoice-extract").status_code == 200
        # The main deployment fails: requests fall back, then its breaker opens.
        standin.always("primary", status(503))
        for _ in range(6):
            _chat(url, "support-answer")
        standin.always("backup", status(500))
        failed = _chat(url, "support-answer")
        assert failed.status_code >= 500
        standin.always("backup", ok("hello from the stand-in, about your refund"))
        for trace in traces[:16]:
            outcome = "success" if int(trace[-1], 16) % 4 else "failure"
            httpx.post(
                f"{url}/v1/outcomes",
                json={"trace_id": trace, "outcome": outcome},
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
                timeout=10,
            )
        incidents = Incidents(db)
        incident = incidents.open(
            "support-answer",
            "answered with a retired refund policy",
            trace_id=traces[3],
            opened_by="support-team",
            controls=controls(config.features["support-answer"]),
        )
        other = incidents.open("support-answer", "missed the refund case", severity="low")
        time.sleep(0.01)
        suite = folder / "promptfooconfig.yaml"
        suite.write_text(SUITE)
        request = EvalRequest(suite, config=config, db=db, url=url, api_key=ADMIN_KEY)
        # In its own thread: the test session may already run an event loop here.
        with ThreadPoolExecutor(1) as pool:
            outcome = pool.submit(asyncio.run, execute(request)).result()
        case = db.execute("SELECT case_key FROM eval_cases WHERE run_id = ? ORDER BY idx DESC",
                          (outcome.run_id,))[0]["case_key"]  # fmt: skip
        incidents.link(other.id, "eval_case", case, note="refund case added to the suite")
        incidents.close(other.id, "the suite now covers refunds")
        release = ReleaseStore(db).start(
            "draft-reply",
            mode="canary",
            share=0.5,
            candidate_prompt=None,
            route=config.features["invoice-extract"].route,
            actor="release-bot",
        )
        assert release.id
        gateway.releases.changed()  # started from here, not through the API: serve it now
        for i in range(8):
            _chat(url, "draft-reply", f"draft {i}")
        check_drift(db, config)
        gateway.telemetry.writer.flush()
        _wait_for_traces(gateway.dashboard.traces_db(), len(traces))
        yield Site(url, gateway, db, traces, failed.headers["x-bounded-trace-id"], incident.id,
                   outcome.run_id)  # fmt: skip
    db.close()


def _wait_for_traces(db: Database, count: int) -> None:
    """Traces are written off the request path, in batches: wait until they are stored."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if int(db.execute("SELECT COUNT(*) AS n FROM traces")[0]["n"]) >= count:
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing = f"chromium is not installed at {CHROMIUM}: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(missing + " (CI must run the dashboard tests)")
        pytest.skip(missing)
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def login(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui")
    page.fill("#key", ADMIN_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/ui/")


def shot(page: Any, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
