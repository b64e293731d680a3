"""``telemetry.max_traces_per_s``: past it a request is counted, not traced; a failure is
still traced (its root span), and so is a request whose client sent its own trace id.

A real gateway (uvicorn, SQLite) in front of the stand-in upstream, called over HTTP; the
traces read back over GET /v1/traces and the counts over GET /metrics.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest

from bounded.store.db import Database
from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import FaultyUpstream, ok, status, stream_error
from tests.telemetry.test_metrics import samples, total

AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
RATE = 3.0


def config(base_url: str, rate: float | None = RATE) -> dict[str, Any]:
    once = {"attempts": 1}
    return {
        "server": {"dev_key": False, "reload": False},
        "telemetry": {"max_traces_per_s": rate},
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "sk-standin"}},
        "models": {
            "m": {"provider": "up", "model": "m"},
            "broken": {"provider": "up", "model": "b"},
            "cutting": {"provider": "up", "model": "c"},
        },
        "features": {
            "answer": {"owner": "support", "route": {"targets": ["m"]}},
            "down": {"owner": "support", "route": {"targets": ["broken"], "retry": once}},
            "cut": {"owner": "support", "route": {"targets": ["cutting"], "retry": once}},
        },
    }


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget()
    standin.always("m", ok("fine"))
    standin.always("b", status(503))
    standin.always("c", stream_error(after_tokens=["Hel"]))
    return standin


def ask(http: httpx.Client, feature: str = "answer", **headers: str) -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        json={"model": feature, "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )


def trace(http: httpx.Client, trace_id: str) -> dict[str, Any] | None:
    found = http.get(f"/v1/traces/{trace_id}")
    if found.status_code == 404:
        return None
    assert found.status_code == 200, found.text
    body: dict[str, Any] = found.json()
    return body


def test_past_the_rate_requests_are_counted_and_failures_still_traced(
    gateway_factory: Any, upstream: FaultyUpstream, db: Database
) -> None:
    with (
        gateway_factory(config(upstream.base_url)) as (url, gateway),
        httpx.Client(base_url=url, headers=AUTH, timeout=10) as http,
    ):
        began = time.monotonic()
        answered = [ask(http) for _ in range(12)]
        elapsed = time.monotonic() - began
        assert all(r.status_code == 200 for r in answered)
        # The allowance is spent now (for about a second): a failure past it, an
        # upstream's 503 and a body refused before any ledger row, are still traced.
        failed = ask(http, "down")
        refused = http.post("/v1/chat/completions", json={"model": "answer"})
        # A stream that fails after its first token: the client got a 200 and an error
        # event; nothing was raised on the request path, the ledger row says 502.
        cut = http.post(
            "/v1/chat/completions",
            json={
                "model": "cut",
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert cut.status_code == 200 and '"error"' in cut.text
        own = ask(http, **{"x-bounded-trace-id": "debug-this-one"})
        assert gateway.telemetry.flush()
        ids = [r.headers["x-bounded-trace-id"] for r in answered]
        traced = [t for t in (trace(http, i) for i in ids) if t is not None]
        failed_trace = trace(http, failed.headers["x-bounded-trace-id"])
        refused_trace = trace(http, refused.headers["x-bounded-trace-id"])
        cut_trace = trace(http, cut.headers["x-bounded-trace-id"])
        own_trace = trace(http, "debug-this-one")
        scraped = samples(http.get("/metrics").text)

    # A second's worth at the start, then RATE a second: never more, at least the first.
    assert 1 <= len(traced) <= RATE + math.ceil(elapsed * RATE)
    for found in traced:  # a traced request is traced in full: root, stages, attempt
        assert len(found["spans"]) > 5
    skipped = len(ids) - len(traced)
    assert skipped >= 12 - RATE - math.ceil(elapsed * RATE)
    assert total(scraped, "bounded_traces_skipped_total") == skipped
    # Every request is counted and in the ledger, traced or not.
    assert total(scraped, "bounded_requests_total", feature="answer") == 13
    rows = db.execute("SELECT trace_id FROM ledger WHERE feature = 'answer'")
    assert {r["trace_id"] for r in rows} >= set(ids)

    assert failed.status_code >= 500 and refused.status_code == 422  # no messages
    failures = ((failed_trace, failed.status_code), (refused_trace, 422), (cut_trace, 502))
    for found, code in failures:
        assert found is not None, "a failure past the rate is traced"
        (root,) = found["spans"]  # its root span only
        assert root["status"] == "error"
        assert root["attributes"]["bounded.trace.partial"] is True
        assert root["attributes"]["http.response.status_code"] == code
        assert root["duration_ms"] > 0
    # A client that names its trace asked for it: traced in full, whatever the rate.
    assert own.status_code == 200
    assert own_trace is not None and len(own_trace["spans"]) > 5


def test_with_no_limit_every_request_is_traced(
    gateway_factory: Any, upstream: FaultyUpstream
) -> None:
    with (
        gateway_factory(config(upstream.base_url, rate=None)) as (url, gateway),
        httpx.Client(base_url=url, headers=AUTH, timeout=10) as http,
    ):
        ids = [ask(http).headers["x-bounded-trace-id"] for _ in range(12)]
        assert gateway.telemetry.flush()
        assert all(trace(http, i) is not None for i in ids)
        scraped = samples(http.get("/metrics").text)
    assert total(scraped, "bounded_traces_skipped_total") == 0
