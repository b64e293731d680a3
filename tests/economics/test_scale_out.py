"""Two ``bounded serve`` replicas sharing one Redis and one PostgreSQL behave as one gateway.

Each replica is a real subprocess on its own port with the embedded local model; budgets
and rate limits live in Redis (Lua scripts), the ledger in a PostgreSQL database created
for this module. Load is split between the two ports, and the limits must hold exactly as
they do for a single process.

The model is priced on output only and always writes ``max_tokens`` tokens here, so a
request costs exactly what it reserves ($0.001 per token at $1000 per million).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import yaml
from alembic.script import ScriptDirectory

from bounded.economics.ledger import LedgerRow, LedgerUnavailable
from bounded.economics.pg_ledger import PostgresLedger
from bounded.economics.redis_accountant import RedisAccountant, split_prefix
from bounded.economics.rules import BudgetRule
from bounded.errors import TooManyRequests
from bounded.store.db import Database
from bounded.store.migrate import alembic_config
from tests.e2e.server import ADMIN_KEY, BoundedServer, free_port

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.local_model,
    pytest.mark.skipif(find_spec("llama_cpp") is None, reason="needs the `local` extra"),
]

MAX_TOKENS = 2
COST = Decimal("0.002")  # MAX_TOKENS output tokens at $1000 per million
FITS = 8  # requests the shared budget fits
RPM = 4
# Generous: the model answers one request at a time, on cores shared with other work.
ROUTE = {"targets": ["smol"], "timeout_s": 300, "deadline_s": 600}
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def config(store: str, redis: str) -> dict[str, Any]:
    return {
        "server": {"store": store, "redis": redis, "dev_key": False, "reload": False},
        "providers": {"local": {"kind": "local"}},
        "models": {
            "smol": {
                "provider": "local",
                "model": "smollm2-135m-instruct",
                "price": {"input": "0", "output": "1000"},
            }
        },
        "features": {
            "capped": {
                "owner": "billing",
                "route": ROUTE,
                "budget": {"amount_usd": str(COST * FITS), "period": "month"},
            },
            "open": {
                "owner": "search",
                "route": ROUTE,
            },
            "limited": {
                "owner": "search",
                "route": ROUTE,
                "rate_limit": {"rpm": RPM},
            },
        },
    }


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str
) -> Iterator[list[BoundedServer]]:
    folder: Path = tmp_path_factory.mktemp("replicas")
    data = yaml.safe_dump(config(postgres_url, redis_url))
    servers: list[BoundedServer] = []
    try:
        for name in ("a", "b"):
            path = folder / f"{name}.yaml"
            path.write_text(data)
            servers.append(BoundedServer.spawn(path, free_port(), ready_timeout_s=90))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def ledger(postgres_url: str) -> Iterator[Database]:
    db = Database.open(postgres_url, migrate=False)
    yield db
    db.close()


async def ask(client: httpx.AsyncClient, server: BoundedServer, feature: str) -> httpx.Response:
    return await client.post(
        f"{server.base_url}/chat/completions",
        json={"model": feature, "messages": STORY, "max_tokens": MAX_TOKENS, "temperature": 0},
    )


async def split_load(servers: list[BoundedServer], feature: str, n: int) -> list[httpx.Response]:
    """``n`` concurrent requests, alternating between the replicas."""
    limits = httpx.Limits(max_connections=n)
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(timeout=600, limits=limits, headers=headers) as client:
        return await asyncio.gather(
            *(ask(client, servers[i % len(servers)], feature) for i in range(n))
        )


def test_postgres_is_migrated_to_head(replicas: list[BoundedServer], ledger: Database) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert ledger.execute("SELECT version_num FROM alembic_version")[0]["version_num"] == head


async def test_both_replicas_write_to_the_one_postgres_ledger(
    replicas: list[BoundedServer], ledger: Database
) -> None:
    responses = await split_load(replicas, "open", 2)
    assert [r.status_code for r in responses] == [200, 200]
    traces = [r.headers["x-bounded-trace-id"] for r in responses]
    rows = ledger.execute("SELECT trace_id, deployment FROM ledger WHERE feature = 'open'")
    assert sorted(row["trace_id"] for row in rows) == sorted(traces)


async def test_budget_holds_across_replicas(
    replicas: list[BoundedServer], ledger: Database, redis_url: str
) -> None:
    responses = await split_load(replicas, "capped", 3 * FITS)

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    # Each replica alone would admit FITS; sharing Redis, both together admit FITS.
    assert len(ok) == FITS, [r.text for r in responses if r.status_code not in (200, 429)]
    assert len(refused) == 2 * FITS
    for r in refused:
        error = r.json()["error"]
        assert error["code"] == "budget_exceeded"
        assert "month budget of $0.016 for feature:capped" in error["message"]
    assert {r.url.port for r in refused} == {s.port for s in replicas}

    # Both replicas wrote their rows to the one PostgreSQL ledger, one per response.
    traces = [r.headers["x-bounded-trace-id"] for r in ok]
    rows = ledger.execute(
        "SELECT trace_id, cost_e10 FROM ledger WHERE feature = 'capped' AND status = 200"
    )
    assert sorted(row["trace_id"] for row in rows) == sorted(traces)
    assert sum(int(row["cost_e10"]) for row in rows) <= int(COST * FITS * 10**10)

    # Redis loses its counters (a restart without persistence): the budget is re-seeded
    # from the PostgreSQL ledger, so the spent money is still spent.
    await forget_budgets(redis_url)
    again = await split_load(replicas, "capped", 2)
    assert [r.status_code for r in again] == [429, 429]
    assert all(r.json()["error"]["code"] == "budget_exceeded" for r in again)


async def test_rate_limit_holds_across_replicas(replicas: list[BoundedServer]) -> None:
    responses = await split_load(replicas, "limited", 2 * RPM)

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) == RPM and len(refused) == RPM
    for r in refused:
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        assert r.headers["x-ratelimit-limit-requests"] == str(RPM)
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        # One request comes back every 60/RPM seconds.
        assert 1 <= int(r.headers["retry-after"]) <= 60 // RPM
    assert all(r.headers["x-ratelimit-limit-requests"] == str(RPM) for r in ok)


async def forget_budgets(redis_url: str) -> None:
    url, prefix = split_prefix(redis_url)
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}budget:*")]
        assert keys, "the replicas kept no budget counters in Redis"
        await client.delete(*keys)
    finally:
        await client.aclose()


async def test_a_killed_replicas_reservations_come_back_after_the_hold_ttl(
    redis_url: str, postgres_url: str
) -> None:
    rule = [BudgetRule("feature:orphaned", COST * 2, "day", "hard")]
    # 3 s: room for a busy machine between the holds and the refusal that needs them alive.
    doomed = RedisAccountant(redis_url, postgres_url, hold_ttl_s=3)
    survivor = RedisAccountant(redis_url, postgres_url, hold_ttl_s=3)
    try:
        now = time.time()
        for _ in range(2):  # reserved, then the replica dies before settling either
            await doomed.reserve(rule, [], COST, 10, now)
        await doomed.aclose()
        with pytest.raises(TooManyRequests, match="held by requests in progress"):
            await survivor.reserve(rule, [], COST, 10, now)
        # Then wait for the state, not for a duration: admitted once the holds lapse.
        deadline = time.monotonic() + 30
        while True:
            try:
                hold = await survivor.reserve(rule, [], COST, 10, time.time())
                break
            except TooManyRequests:
                assert time.monotonic() < deadline, "the orphaned holds never lapsed"
                await asyncio.sleep(0.1)
        await survivor.settle(hold, COST, 10)
    finally:
        await survivor.aclose()


async def test_postgres_ledger_commits_concurrent_rows_together(postgres_url: str) -> None:
    db = Database.open(postgres_url)  # migrated to head, as `bounded serve` leaves it
    ledger = PostgresLedger(postgres_url)
    try:
        await asyncio.gather(*(ledger.record(row(f"group-{i}")) for i in range(100)))
    finally:
        await ledger.aclose()
    try:
        found = db.execute(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT xmin::text) AS commits FROM ledger"
            " WHERE trace_id LIKE ?",
            ("group-%",),
        )[0]
    finally:
        db.close()
    assert found["n"] == 100
    assert found["commits"] <= 3  # one transaction per batch, not one per row

    unreachable = PostgresLedger(postgres_url.rsplit("/", 1)[0] + "/bounded_no_such_database")
    with pytest.raises(LedgerUnavailable, match="cost ledger write failed"):
        await unreachable.record(row("lost"))
    await unreachable.aclose()


def row(trace_id: str) -> LedgerRow:
    return LedgerRow(
        ts=time.time(),
        trace_id=trace_id,
        session_id=None,
        key_id=None,
        team=None,
        feature="direct",
        arm="stable",
        provider="local",
        deployment="smol",
        model="smollm2",
        input_tokens=10,
        output_tokens=2,
        cached_tokens=0,
        reasoning_tokens=0,
        cost_e10=20,
        usage_source="provider",
        latency_ms=1.0,
        ttft_ms=None,
        status=200,
        error_class=None,
        attempts=1,
        stream=False,
    )
