"""Stored text is deleted when its feature's retention period ends, by the background job;
the trace's spans, the ledger and the metrics stay."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from bounded.store.db import Database
from bounded.telemetry.config import TelemetryConfig
from bounded.telemetry.retention import sweep
from bounded.telemetry.store import trace_store_url
from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import FaultyUpstream, ok

AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
SHORT_DAYS = 3 / 86400  # three seconds


def test_text_goes_after_its_period_and_metrics_stay(
    gateway_factory: Any, standin: FaultyUpstream, db: Database, store_url: str
) -> None:
    standin.forget()
    standin.always("m", ok("kept for a moment"))
    data = {
        "server": {"dev_key": False, "reload": False},
        "telemetry": {"retention_interval_s": 0.1},
        "providers": {"up": {"kind": "openai", "base_url": standin.base_url, "api_key": "x"}},
        "models": {"m": {"provider": "up", "model": "m"}},
        "features": {
            "brief": {
                "owner": "t",
                "route": {"targets": ["m"]},
                "telemetry": {"text_retention_days": SHORT_DAYS},
            },
            "long": {"owner": "t", "route": {"targets": ["m"]}},
        },
    }
    with (
        gateway_factory(data) as (url, gateway),
        openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0) as client,
    ):
        ids = {}
        for feature in ("brief", "long"):
            raw = client.chat.completions.with_raw_response.create(
                model=feature, messages=[{"role": "user", "content": "remember this"}]
            )
            ids[feature] = raw.headers["x-bounded-trace-id"]
        assert gateway.telemetry.flush()
        before = _text(url, ids["brief"])
        assert [t["completion"] for t in before] == ["kept for a moment"]
        # Read from the table itself, not only through the API (which hides expired text
        # before the job has deleted it): wait until the job has.
        traces = Database.open(trace_store_url(store_url), migrate=False)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                stored = traces.execute("SELECT trace_id FROM trace_texts")
                if ids["brief"] not in [r["trace_id"] for r in stored]:
                    break
                time.sleep(0.2)
        finally:
            traces.close()
        assert _text(url, ids["brief"]) == []
        after = httpx.get(f"{url}/v1/traces/{ids['brief']}", headers=AUTH).json()
        metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
    assert [r["trace_id"] for r in stored] == [ids["long"]]
    assert after["spans"] and after["requests"][0]["feature"] == "brief"
    assert len(db.execute("SELECT id FROM ledger WHERE trace_id = ?", (ids["brief"],))) == 1
    requests = sum(
        s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "bounded_requests_total" and s.labels["feature"] == "brief"
    )
    assert requests == 1


def test_sweep_keeps_spans_until_their_own_period(db: Database) -> None:
    now = time.time()
    db.execute(
        "INSERT INTO traces (span_id, trace_id, ts, duration_ms, name, status, http_status)"
        " VALUES ('a', 'old', ?, 1, 'chat', 'ok', 200), ('b', 'new', ?, 1, 'chat', 'ok', 200)",
        (now - 3 * 86400, now),
    )
    for trace, ts in (("old", now - 3 * 86400), ("new", now)):
        db.execute(
            "INSERT INTO spans (trace_id, span_id, name, start_ns, end_ns, status, attributes)"
            " VALUES (?, 'a', 'chat', ?, ?, 'ok', '{}')",
            (trace, int(ts * 1e9), int(ts * 1e9)),
        )
    removed = sweep(db, TelemetryConfig(trace_retention_days=2), now=now)
    assert removed == {"texts": 0, "spans": 1, "traces": 1}
    assert [r["trace_id"] for r in db.execute("SELECT trace_id FROM spans")] == ["new"]


def _text(url: str, trace_id: str) -> list[dict[str, Any]]:
    got = httpx.get(f"{url}/v1/traces/{trace_id}", headers=AUTH, params={"include": "text"})
    assert got.status_code == 200, got.text
    return list(got.json()["text"])
