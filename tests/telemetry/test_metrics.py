"""GET /metrics parses as Prometheus text and its counters match the ledger; several
processes writing metrics are summed (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bounded.store.db import Database
from bounded.store.keys import KeyRepository
from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import FaultyUpstream, ok, status, stream

AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


def config(base_url: str) -> dict[str, Any]:
    return {
        "server": {"dev_key": False, "reload": False},
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "sk-standin"}},
        "models": {
            "m": {"provider": "up", "model": "m", "price": {"input": "3", "output": "15"}},
            "broken": {"provider": "up", "model": "broken"},
        },
        "breaker": {"window": 2, "min_calls": 2, "failure_rate": 0.5, "cooldown_s": 600},
        "features": {
            "answer": {
                "owner": "support",
                "team": "care",
                "route": {"targets": ["m"]},
                "budget": {"amount_usd": "100", "period": "month"},
                "guards": {"input": [{"kind": "pii", "action": "redact"}]},
            },
            "down": {
                "owner": "support",
                "route": {"targets": ["broken"], "retry": {"attempts": 1}},
            },
        },
    }


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget()
    standin.always("m", ok("fine"))
    standin.always("broken", status(503))
    return standin


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def total(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(
        value
        for got, value in found.get(name, [])
        if all(got.get(k) == v for k, v in labels.items())
    )


def test_metrics_match_the_ledger(
    gateway_factory: Any, upstream: FaultyUpstream, db: Database, keys: KeyRepository
) -> None:
    _, scraper = keys.create("prometheus", scopes=("metrics:read",))
    _, plain = keys.create("app")
    with (
        gateway_factory(config(upstream.base_url)) as (url, _gateway),
        openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0) as client,
        openai.OpenAI(base_url=f"{url}/v1", api_key="bnd_wrong", max_retries=0) as wrong,
    ):
        for i in range(5):
            client.chat.completions.create(
                model="answer", messages=[{"role": "user", "content": f"mail {i}@example.org"}]
            )
        upstream.always("m", stream(["a", "b", "c"]))
        for _ in range(2):
            for _ in client.chat.completions.create(
                model="answer", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                pass
        for _ in range(3):
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(
                    model="down", messages=[{"role": "user", "content": "hi"}]
                )
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(
                model="answer", messages=[{"role": "user", "content": "x"}]
            )
        denied = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {plain}"})
        scraped = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {scraper}"})
    assert denied.status_code == 403
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    found = samples(scraped.text)
    ledger = db.execute(
        "SELECT feature, status, error_class, input_tokens, output_tokens, cost_e10, ttft_ms,"
        " attempts"
        " FROM ledger"
    )
    assert len(ledger) == 10
    assert total(found, "bounded_requests_total") == len(ledger)
    assert total(found, "bounded_requests_total", feature="answer", outcome="ok") == 7
    failed = [r for r in ledger if r["status"] >= 400]
    assert total(found, "bounded_errors_total", feature="down") == len(failed) == 3
    classes = {r["error_class"] for r in failed}  # unavailable, then the breaker's refusal
    for error_class in classes:
        count = sum(r["error_class"] == error_class for r in failed)
        assert total(found, "bounded_errors_total", error_class=error_class) == count
        # A GenAI operation is a call that reached an upstream (not the breaker's refusal).
        called = sum(r["error_class"] == error_class and r["attempts"] > 0 for r in failed)
        assert (
            total(found, "gen_ai_client_operation_duration_seconds_count", error_type=error_class)
            == called
        )
    assert total(found, "bounded_tokens_total", type="input") == sum(
        r["input_tokens"] for r in ledger
    )
    assert total(found, "bounded_tokens_total", type="output") == sum(
        r["output_tokens"] for r in ledger
    )
    cost = sum(r["cost_e10"] for r in ledger) / 1e10
    assert total(found, "bounded_cost_usd_total", team="care") == pytest.approx(cost)
    assert total(
        found, "bounded_budget_spend_usd_total", scope="feature:answer", period="month"
    ) == (pytest.approx(cost))
    assert total(found, "bounded_request_duration_seconds_count") == len(ledger)
    streamed = [r for r in ledger if r["ttft_ms"] is not None]
    assert total(found, "bounded_time_to_first_token_seconds_count") == len(streamed) == 2
    # The GenAI conventions' metrics, in their Prometheus form and attribute names.
    assert total(
        found,
        "gen_ai_client_token_usage_sum",
        gen_ai_token_type="input",
        gen_ai_provider_name="openai",
        gen_ai_operation_name="chat",
        gen_ai_request_model="m",
    ) == sum(r["input_tokens"] for r in ledger if r["feature"] == "answer")
    assert total(found, "gen_ai_client_operation_duration_seconds_count") == sum(
        r["attempts"] > 0 for r in ledger
    )
    # Guards: five emails redacted on input; breakers: the broken deployment is open.
    assert total(found, "bounded_guard_hits_total", guard="pii", action="redact") == 5
    assert total(found, "bounded_breaker_state", deployment="broken") == 2
    assert total(found, "bounded_breaker_state", deployment="m") == 0
    # Refused before any ledger row: the wrong key, by its code.
    assert total(found, "bounded_refused_total") == 1


_WORKER = """
import os, sys
import prometheus_client  # imported before the folder is set, as a supervisor may have
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[2]
from bounded.economics.ledger import LedgerRow
from bounded.telemetry.metrics import Metrics
m = Metrics()
for i in range(int(sys.argv[1])):
    m.row(LedgerRow(ts=0.0, trace_id="t", session_id=None, key_id=None, team=None,
        feature="f", arm="stable", provider="openai", deployment="d", model="m",
        input_tokens=10, output_tokens=3, cached_tokens=0, reasoning_tokens=0, cost_e10=5,
        usage_source="provider", latency_ms=12.0, ttft_ms=None, status=200, error_class=None,
        attempts=1, stream=False))
"""
_SCRAPE = """
from bounded.telemetry.metrics import Metrics
print(Metrics().render().decode())
"""


def test_several_processes_are_summed(tmp_path: Path) -> None:
    """What --workers N needs: each worker writes its own files, a scrape sums them."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    for count in (3, 4):
        subprocess.run(
            [sys.executable, "-c", _WORKER, str(count), str(tmp_path)], env=env, check=True
        )
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    text = subprocess.run(
        [sys.executable, "-c", _SCRAPE], env=env, check=True, capture_output=True, text=True
    ).stdout
    found = samples(text)
    assert total(found, "bounded_requests_total", feature="f") == 7
    assert total(found, "bounded_tokens_total", type="input") == 70
    assert total(found, "gen_ai_client_token_usage_count", gen_ai_token_type="output") == 7
