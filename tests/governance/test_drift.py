"""Drift: a signal leaving its band raises one alert, recorded and posted to a webhook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bounded.economics.ledger import INSERT, LedgerRow
from bounded.governance.alerts import check_drift, deliver_pending, recent_alerts
from bounded.governance.signals import feature_signals
from bounded.store.db import Database
from tests.conftest import make_config, serve_in_thread

HOUR = 3600.0


def row(ts: float, *, latency: float = 100.0, failed: bool = False, tokens: int = 40) -> tuple:
    r = LedgerRow(
        ts, f"t{ts}", None, None, "team", "answer", "stable", "up", "m", "m",
        10, tokens, 0, 0, 5000, "provider", latency, None, 200, None, 1, False,
        validation="failed" if failed else "passed",
    )  # fmt: skip
    return tuple(getattr(r, f) for f in LedgerRow.__dataclass_fields__)


def seed(db: Database, start: float, hours: int, per_hour: int, **kw: Any) -> None:
    rows = [row(start + h * HOUR + i, **kw) for h in range(hours) for i in range(per_hour)]
    db.executemany(INSERT, rows)


def config(store_url: str, **alerts: Any) -> Any:
    return make_config(
        {
            "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "models": {"m": {"provider": "up", "model": "m"}},
            "features": {
                "answer": {
                    "owner": "o",
                    "risk_tier": "low",
                    "route": {"targets": ["m"]},
                    "health": {"validation_failure_rate": {"max": 0.2}},
                }
            },
            "alerts": {"window_s": HOUR, "baseline_s": 6 * HOUR, "min_samples": 10, **alerts},
        },
        store_url,
    )


def test_signals_from_the_ledger(db: Database) -> None:
    now = time.time()
    seed(db, now - 100, 1, 30, failed=False)
    seed(db, now - 50, 1, 10, failed=True, latency=900.0)
    s = feature_signals(db, now - HOUR, now + 1)["answer"]
    assert s.requests == 40
    assert s.validation_failure_rate == pytest.approx(0.25)
    assert s.latency_p95_ms == 900.0
    assert s.answer_tokens == 40


def test_a_learned_band_and_a_configured_one_each_raise_once(db: Database, store_url: str) -> None:
    now = time.time()
    cfg = config(store_url)
    # Six steady baseline hours at 100 ms, then a current hour at 400 ms with 40% failures.
    seed(db, now - 7 * HOUR, 6, 20)
    assert check_drift(db, cfg, now=now - HOUR + 1) == []
    seed(db, now - HOUR + 10, 1, 12, latency=400.0)
    seed(db, now - HOUR + 30, 1, 8, latency=400.0, failed=True)
    raised = {a.signal: a for a in check_drift(db, cfg, now=now)}
    assert set(raised) == {"latency_p95_ms", "validation_failure_rate"}
    assert raised["latency_p95_ms"].band.source == "baseline"
    assert raised["validation_failure_rate"].band.source == "configured"
    assert raised["validation_failure_rate"].value == pytest.approx(0.4)
    # Still out a minute later: not raised again within the window.
    assert check_drift(db, cfg, now=now + 60) == []
    assert len(recent_alerts(db, now - HOUR)) == 2


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Any]]]:
    got: list[Any] = []

    async def hook(request: Request) -> Response:
        got.append(await request.json())
        # The first two deliveries fail: the sender must retry.
        return Response(status_code=503 if len(got) <= 2 else 204)

    with serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        yield f"{url}/hook", got


def test_alerts_are_posted_with_retries(db: Database, store_url: str, receiver: Any) -> None:
    url, got = receiver
    cfg = config(store_url, webhook=url)
    now = time.time()
    seed(db, now - 100, 1, 20, failed=True)
    [alert] = check_drift(db, cfg, now=now)
    assert recent_alerts(db, now - 10)[0]["delivery"] == "pending"
    assert asyncio.run(deliver_pending(db, cfg.alerts, backoff_s=0.01)) == 1
    stored = recent_alerts(db, now - 10)[0]
    assert (stored["delivery"], stored["delivery_attempts"]) == ("sent", 3)
    assert got[-1]["feature"] == "answer" and got[-1]["signal"] == "validation_failure_rate"
    assert got[-1]["band"]["max"] == 0.2 and alert.value == 1.0


def test_an_unreachable_webhook_is_marked_failed(db: Database, store_url: str) -> None:
    cfg = config(store_url, webhook="http://127.0.0.1:9/nothing", webhook_attempts=2)
    now = time.time()
    seed(db, now - 100, 1, 20, failed=True)
    check_drift(db, cfg, now=now)
    assert asyncio.run(deliver_pending(db, cfg.alerts, backoff_s=0.01)) == 0
    assert recent_alerts(db, now - 10)[0]["delivery"] == "failed"


@pytest.mark.postgres
def test_signals_and_alerts_on_postgresql(postgres_url: str) -> None:
    db = Database.open(postgres_url)
    try:
        db.execute("DELETE FROM ledger")
        db.execute("DELETE FROM drift_alerts")
        now = time.time()
        seed(db, now - 7 * HOUR, 6, 20)
        seed(db, now - HOUR + 10, 1, 12, latency=400.0)
        seed(db, now - HOUR + 30, 1, 8, latency=400.0, failed=True)
        s = feature_signals(db, now - HOUR, now)["answer"]
        assert (s.requests, s.latency_p95_ms) == (20, 400.0)
        raised = {a.signal for a in check_drift(db, config(postgres_url), now=now)}
        assert raised == {"latency_p95_ms", "validation_failure_rate"}
    finally:
        db.close()


def _race(url: str, cfg: Any, now: float, webhook: str | None, checkers: int = 4) -> None:
    """``checkers`` connections (as workers or replicas have) check and deliver at once."""
    import threading

    dbs = [Database.open(url) for _ in range(checkers)]
    barrier = threading.Barrier(checkers)

    def one(db: Database) -> None:
        barrier.wait()
        check_drift(db, cfg, now=now)
        if webhook is not None:
            asyncio.run(deliver_pending(db, cfg.alerts, backoff_s=0.01))

    threads = [threading.Thread(target=one, args=(db,)) for db in dbs]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for db in dbs:
            db.close()


@pytest.fixture
def counting_receiver() -> Iterator[tuple[str, list[Any]]]:
    got: list[Any] = []

    async def hook(request: Request) -> Response:
        got.append(await request.json())
        return Response(status_code=204)

    with serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        yield f"{url}/hook", got


def test_workers_checking_at_once_raise_and_post_each_alert_once(
    db: Database, store_url: str, counting_receiver: Any
) -> None:
    url, got = counting_receiver
    cfg = config(store_url, webhook=url)
    now = time.time()
    seed(db, now - 100, 1, 20, failed=True)
    _race(store_url, cfg, now, url)
    alerts = recent_alerts(db, now - 10)
    assert [(a["signal"], a["delivery"]) for a in alerts] == [("validation_failure_rate", "sent")]
    assert [g["signal"] for g in got] == ["validation_failure_rate"]


@pytest.mark.postgres
def test_replicas_on_postgresql_raise_each_alert_once(postgres_url: str) -> None:
    db = Database.open(postgres_url)
    try:
        db.execute("DELETE FROM ledger")
        db.execute("DELETE FROM drift_alerts")
        now = time.time()
        seed(db, now - 100, 1, 20, failed=True)
        _race(postgres_url, config(postgres_url), now, None)
        assert [a["signal"] for a in recent_alerts(db, now - 10)] == ["validation_failure_rate"]
    finally:
        db.close()
