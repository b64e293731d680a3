"""Budgets in the embedded gateway: reserved before the call, settled after, never overspent.

A real gateway (uvicorn on a loopback port, SQLite store) in front of the embedded local
model. The model is priced on output only ($1000 per million tokens) and always writes
``max_tokens`` tokens for these prompts, so each request reserves and then spends exactly
$0.002 and budget sizes are whole numbers of requests.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.util import find_spec
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from bounded.store.db import Database
from bounded.store.keys import KeyRepository
from tests.conftest import ADMIN_KEY

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(find_spec("llama_cpp") is None, reason="needs the `local` extra"),
]

MAX_TOKENS = 2
COST = Decimal("0.002")
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
# Generous: the model answers one request at a time, on cores shared with other work.
ROUTE = {"targets": ["smol"], "timeout_s": 300, "deadline_s": 600}


def config(features: dict[str, Any], teams: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "server": {"dev_key": False, "reload": False},
        "providers": {"local": {"kind": "local"}},
        "models": {
            "smol": {
                "provider": "local",
                "model": "smollm2-135m-instruct",
                "price": {"input": "0", "output": "1000"},
            }
        },
        "features": {
            name: {"owner": "owners", "route": ROUTE, **extra} for name, extra in features.items()
        },
        "teams": teams or {},
    }


def budget(requests: int, mode: str = "hard", period: str = "day") -> dict[str, str]:
    amount = format((COST * requests).normalize(), "f")  # "0.1", as a user would write it
    return {"amount_usd": amount, "period": period, "mode": mode}


def body(feature: str) -> dict[str, Any]:
    return {"model": feature, "messages": STORY, "max_tokens": MAX_TOKENS, "temperature": 0}


def client(url: str, key: str = ADMIN_KEY, connections: int = 10) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"authorization": f"Bearer {key}"},
        timeout=600,
        limits=httpx.Limits(max_connections=connections),
    )


def ledger_cost(db: Database, feature: str) -> Decimal:
    rows = db.execute("SELECT SUM(cost_e10) AS total FROM ledger WHERE feature = ?", (feature,))
    return Decimal(int(rows[0]["total"] or 0)) / Decimal(10**10)


async def test_200_concurrent_requests_cannot_overspend_a_budget_that_fits_50(
    gateway_factory: Any, db: Database
) -> None:
    with gateway_factory(config({"capped": {"budget": budget(50)}})) as (url, _):
        async with client(url, connections=200) as http:
            responses = await asyncio.gather(
                *(http.post("/v1/chat/completions", json=body("capped")) for _ in range(200))
            )

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) == 50, {r.status_code for r in responses}
    assert len(refused) == 150
    midnight = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d 00:00 UTC")
    for r in refused:
        error = r.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "budget_exceeded"
        assert "hard day budget of $0.1 for feature:capped" in error["message"]
        assert f"resets {midnight}" in error["message"]
        # retry-after says when the day's budget comes back.
        assert 0 < int(r.headers["retry-after"]) <= 86_400
    assert all(Decimal(r.headers["x-bounded-cost-usd"]) == COST for r in ok)
    assert ledger_cost(db, "capped") == COST * 50  # and so never more than the budget


async def test_a_budget_on_input_tokens_is_not_overspent(
    gateway_factory: Any, db: Database
) -> None:
    data = config({"capped": {"budget": {"amount_usd": "0.05", "period": "day"}}})
    data["models"]["smol"]["price"] = {"input": "1000", "output": "1000"}
    with gateway_factory(data) as (url, _):
        async with client(url) as http:
            responses = await asyncio.gather(
                *(http.post("/v1/chat/completions", json=body("capped")) for _ in range(10))
            )
    assert {r.status_code for r in responses} == {200, 429}
    assert ledger_cost(db, "capped") <= Decimal("0.05")


async def test_soft_budget_allows_the_request_and_records_an_alert(
    gateway_factory: Any, db: Database
) -> None:
    with gateway_factory(config({"watched": {"budget": budget(1, mode="soft")}})) as (url, _):
        async with client(url) as http:
            responses = [
                await http.post("/v1/chat/completions", json=body("watched")) for _ in range(3)
            ]

    assert [r.status_code for r in responses] == [200, 200, 200]
    alerts = db.execute("SELECT scope, period, amount_usd, trace_id FROM budget_alerts")
    # The first request fits the budget exactly; the next two pass it and are alerted.
    assert [a["trace_id"] for a in alerts] == [
        r.headers["x-bounded-trace-id"] for r in responses[1:]
    ]
    assert {(a["scope"], a["period"], Decimal(a["amount_usd"])) for a in alerts} == {
        ("feature:watched", "day", COST)
    }
    assert ledger_cost(db, "watched") == COST * 3


async def test_key_team_and_feature_budgets_all_apply(
    gateway_factory: Any, db: Database, keys: KeyRepository
) -> None:
    data = config(
        {
            "growth-a": {"team": "growth", "budget": budget(3)},
            "growth-b": {"team": "growth"},
            "solo": {"budget": budget(1, period="month")},
        },
        teams={"growth": {"budget": budget(2, period="week")}},
    )
    record, key = keys.create(
        "capped-key", features=["*"], limits={"budget": {"amount_usd": "0.002"}}
    )
    with gateway_factory(data) as (url, _):
        async with (
            AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as keyed,
            AsyncOpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0) as admin,
        ):
            await keyed.chat.completions.create(**body("growth-a"))  # key's budget now spent
            key_error = await refused(keyed, "growth-b")
            await admin.chat.completions.create(**body("growth-b"))  # team's budget now spent
            team_error = await refused(admin, "growth-a")  # its own budget has room left
            await admin.chat.completions.create(**body("solo"))
            feature_error = await refused(admin, "solo")

    assert f"hard month budget of $0.002 for key:{record.id}" in key_error
    assert "hard week budget of $0.004 for team:growth" in team_error
    assert "hard month budget of $0.002 for feature:solo" in feature_error
    assert ledger_cost(db, "growth-a") + ledger_cost(db, "growth-b") == COST * 2


async def refused(client: AsyncOpenAI, feature: str) -> str:
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(**body(feature))
    assert caught.value.code == "budget_exceeded"
    assert caught.value.response.headers["retry-after"]
    return caught.value.message


async def test_spend_survives_a_restart(gateway_factory: Any) -> None:
    data = config({"capped": {"budget": budget(2, period="total")}})
    with gateway_factory(data) as (url, _):
        async with client(url) as http:
            first = [await http.post("/v1/chat/completions", json=body("capped")) for _ in range(2)]
    assert [r.status_code for r in first] == [200, 200]

    # A new gateway on the same store knows nothing in memory: it seeds from the ledger.
    with gateway_factory(data) as (url, _):
        async with client(url) as http:
            started = time.monotonic()
            after = await http.post("/v1/chat/completions", json=body("capped"))
    assert after.status_code == 429
    error = after.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert (
        "hard total budget of $0.004 for feature:capped is exhausted (spent $0.004"
        in (error["message"])
    )
    assert "resets never" in error["message"] and "retry-after" not in after.headers
    assert time.monotonic() - started < 5  # refused before any model call
