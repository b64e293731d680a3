"""The dashboard in a real headless Chromium, over data from real traffic."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ADMIN_KEY
from tests.dashboard.conftest import Site, login, shot


def test_login_is_required_and_a_wrong_key_is_refused(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/ui/spend")
    assert "/ui/login" in page.url
    page.fill("#key", "not-the-key")
    page.click("button[type=submit]")
    assert "That key is not valid" in page.inner_text("[role=alert]")
    shot(page, "login")
    page.fill("#key", ADMIN_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/ui/spend")  # back where the user was going


def test_overview_shows_traffic_errors_latency_and_budgets(page: Any, site: Site) -> None:
    login(page, site)
    labels = page.locator(".kpi .label").all_inner_texts()
    kpis = dict(zip(labels, page.locator(".kpi .value").all_inner_texts(), strict=True))
    chats = site.db.execute("SELECT COUNT(*) AS n FROM ledger WHERE operation = 'chat'")
    requests = int(chats[0]["n"])
    assert kpis["REQUESTS"].replace(",", "") == str(requests)
    assert kpis["ERROR RATE"] != "0.0%"
    assert kpis["P95 LATENCY"].endswith("ms")
    # Three charts drew bars or lines, each with labelled axes.
    charts = page.locator("svg.chart")
    assert charts.count() == 3
    assert page.locator("svg.chart rect.bar").count() > 0
    assert page.locator("svg.chart polyline.line, svg.chart circle").count() > 0
    assert page.locator("svg.chart text.tick").count() > 10
    budgets = page.inner_text("text=feature:support-answer >> xpath=ancestor::tr")
    assert "day" in budgets and "$5" in budgets
    assert "team:finance" in page.content()
    shot(page, "overview")


def test_spend_by_feature_team_and_model(page: Any, site: Site) -> None:
    login(page, site)
    page.goto(f"{site.url}/ui/spend?by=feature&range=24h")
    rows = page.locator("#spend-table tbody tr")
    names = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    assert {"support-answer", "invoice-extract", "draft-reply"} <= set(names)
    support = page.locator("#spend-table tr", has_text="support-answer")
    assert "$" in support.locator("td").nth(7).inner_text()  # cost per success from outcomes
    assert page.locator("svg.chart rect.bar").count() > 0
    shot(page, "spend")
    page.click("text=by model")
    assert "by=model" in page.url
    assert page.locator("#spend-table", has_text="gpt-backup").count() == 1
    page.click("text=by team")
    assert page.locator("#spend-table", has_text="finance").count() == 1


def test_features_show_owner_tier_and_health(page: Any, site: Site) -> None:
    login(page, site)
    page.goto(f"{site.url}/ui/features")
    row = page.locator("#features-table tr", has_text="support-answer")
    text = row.inner_text()
    assert "support-team" in text and "medium" in text
    assert "drifting" in text  # its error rate left its configured band
    assert "high" in page.locator("#features-table tr", has_text="invoice-extract").inner_text()
    shot(page, "features")
    page.click("text=support-answer")
    assert page.locator("svg.chart").count() >= 6
    assert "error rate" in page.inner_text("body").lower()
    shot(page, "feature")


def test_deployments_show_breaker_states(page: Any, site: Site) -> None:
    login(page, site)
    page.goto(f"{site.url}/ui/deployments")
    main = page.locator("#deployments-table tr", has_text="gpt-main").inner_text()
    assert "open" in main  # the breaker opened on the upstream's 503s
    assert "closed" in page.locator("#deployments-table tr", has_text="gpt-backup").inner_text()
    shot(page, "deployments")


def test_releases_show_arms(page: Any, site: Site) -> None:
    login(page, site)
    page.goto(f"{site.url}/ui/releases")
    release = page.locator("section.release", has_text="draft-reply")
    assert "canary" in release.inner_text() and "running" in release.inner_text()
    arms = release.locator("tbody tr")
    assert arms.count() >= 1
    shot(page, "releases")


def test_eval_runs_and_their_report(page: Any, site: Site) -> None:
    login(page, site)
    page.goto(f"{site.url}/ui/evals")
    assert page.locator("#evals-table", has_text="support smoke").count() == 1
    shot(page, "evals")
    page.click(f"text={site.eval_run}")
    cases = page.locator("#cases-table tbody tr")
    assert cases.count() == 2
    assert "refund policy" in page.inner_text("#cases-table")
    shot(page, "eval_run")


def test_trace_search_and_waterfall(page: Any, site: Site) -> None:
    login(page, site)
    page.goto(f"{site.url}/ui/traces")
    assert page.locator("#traces-table tbody tr").count() >= 20
    store = site.gateway.dashboard.traces_db()
    for wanted in ("ok", "error"):
        page.select_option("select[name=status]", wanted)
        page.click("form.filters button")
        shown = page.locator("#traces-table tbody tr td:nth-child(2)").all_inner_texts()
        stored = store.execute("SELECT trace_id FROM traces WHERE status = ?", (wanted,))
        assert sorted(s.rstrip("…") for s in shown) == sorted(r["trace_id"][:16] for r in stored)
    page.fill("input[name=q]", site.failed_trace[:12])
    page.select_option("select[name=status]", "")
    page.click("form.filters button")
    assert page.locator("#traces-table tbody tr").count() == 1
    shot(page, "traces")
    page.click("#traces-table tbody tr a")
    assert site.failed_trace in page.inner_text("h1")
    bars = page.locator("#waterfall .wf-row")
    assert bars.count() >= 3
    names = bars.locator(".name").all_inner_texts()
    assert any("chat" in n for n in names)
    shot(page, "trace")


def test_incidents_with_deltas_and_alerts(page: Any, site: Site) -> None:
    login(page, site)
    page.goto(f"{site.url}/ui/incidents")
    open_row = page.locator("#incidents-table tr", has_text=site.incident).inner_text()
    assert "open" in open_row and "cannot be closed" in open_row
    closed = page.locator("#incidents-table tr", has_text="missed the refund case").inner_text()
    assert "closed" in closed and "eval case" in closed
    assert page.locator("#alerts-table tr", has_text="error rate").count() >= 1
    shot(page, "incidents")
    page.goto(f"{site.url}/ui/audit")
    assert page.locator("#audit-table tr", has_text="incident.close").count() == 1
    page.select_option("select[name=action]", "release.start")
    page.click("form.filters button")
    actions = page.locator("#audit-table tbody tr td:nth-child(4)").all_inner_texts()
    assert actions and set(actions) == {"release.start"}
    shot(page, "audit")


def test_forms_refuse_a_post_without_the_csrf_token(site: Site) -> None:
    with httpx.Client(base_url=site.url) as client:
        page = client.get("/ui/login")
        token = page.cookies.get("bounded_ui_login") or client.cookies.get("bounded_ui_login")
        r = client.post("/ui/login", data={"key": ADMIN_KEY, "login_token": token, "next": "/ui/"})
        assert r.status_code == 303 and "bounded_ui" in client.cookies
        # Signed in, but a logout form without its token is refused.
        assert client.post("/ui/logout", data={}).status_code == 403
        assert client.get("/ui/").status_code == 200
        # A login posted from elsewhere (no matching token cookie) signs nobody in.
        other = httpx.post(f"{site.url}/ui/login", data={"key": ADMIN_KEY, "login_token": "x"})
        assert other.status_code == 403 and "bounded_ui=" not in other.headers.get("set-cookie", "")
