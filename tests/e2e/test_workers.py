"""``bounded serve --workers 2``: two gateway processes on one port behave as one gateway.

Real ``bounded serve`` subprocesses in front of the fault-injecting stand-in upstream, which
answers after a short pause (so requests overlap across the workers) and reports exactly
the ``max_tokens`` it was asked for: priced on output only, a request costs exactly what it
reserves ($0.002), and budget sizes are whole numbers of requests. The load is 200
keep-alive connections, which the kernel spreads over both workers (checked on each run).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import yaml
from starlette.requests import Request
from starlette.responses import Response

from bounded.store.db import Database
from tests.e2e.server import ADMIN_KEY, BoundedServer, free_port, write_config
from tests.standins.faulty_upstream import FaultyUpstream, status

T = TypeVar("T")
MAX_TOKENS = 2
COST = Decimal("0.002")  # MAX_TOKENS output tokens at $1000 per million
FITS = 50
RPM = 10
HELD = 4  # requests the "held" budget fits


def priced(delay_s: float = 0.05) -> Any:
    """An answer after ``delay_s`` whose usage is exactly the ``max_tokens`` requested."""

    async def behave(request: Request, body: dict[str, Any]) -> Response:
        await asyncio.sleep(delay_s)
        tokens = int(body.get("max_tokens") or 1)
        reply = {
            "id": "chatcmpl-workers",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok " * tokens},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": tokens, "total_tokens": 3 + tokens},
        }
        return Response(orjson.dumps(reply), media_type="application/json")

    return behave


PRICE = {"input": "0", "output": "1000"}


def config(base_url: str, **server: Any) -> dict[str, Any]:
    return {
        "server": {"dev_key": False, "reload": True, **server},
        "providers": {"standin": {"kind": "openai", "base_url": base_url, "api_key": "x"}},
        "models": {
            "m": {"provider": "standin", "model": "m", "price": PRICE},
            "slow": {"provider": "standin", "model": "slow", "price": PRICE},
            "broken": {"provider": "standin", "model": "broken", "price": PRICE},
        },
        # Opens after 4 calls with half failing; stays open for the rest of the module.
        "breaker": {"window": 4, "min_calls": 4, "failure_rate": 0.5, "cooldown_s": 600},
        "features": {
            "capped": {
                "owner": "billing",
                "route": {"targets": ["m"]},
                "budget": {"amount_usd": str(COST * FITS), "period": "day"},
            },
            "limited": {"owner": "search", "route": {"targets": ["m"]}, "rate_limit": {"rpm": RPM}},
            "open": {"owner": "search", "route": {"targets": ["m"]}},
            "fragile": {"owner": "search", "route": {"targets": ["broken"]}},
            "held": {
                "owner": "billing",
                "route": {"targets": ["slow"]},
                "budget": {"amount_usd": str(COST * HELD), "period": "day"},
            },
        },
    }


@pytest.fixture(scope="module")
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget().always("m", priced())
    standin.always("slow", priced())
    standin.always("broken", status(500))
    return standin


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, upstream: FaultyUpstream
) -> Iterator[BoundedServer]:
    folder: Path = tmp_path_factory.mktemp("workers")
    port = free_port()
    path = write_config(folder, config(upstream.base_url), port)
    server = BoundedServer.spawn(path, port, extra_args=["--workers", "2"], ready_timeout_s=90)
    try:
        wait_for_workers(server, 2)
        yield server
    finally:
        server.stop()


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def sockets(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp(pid: int, port: int, state: str) -> int:
    """TCP sockets of process ``pid`` on local ``port`` in ``state`` (01 open, 0A listen)."""
    inodes = sockets(pid)
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == state and fields[9] in inodes:
                count += 1
    return count


def established(pid: int, port: int) -> int:
    return tcp(pid, port, "01")


def serving(server: BoundedServer) -> list[int]:
    """The worker processes: children of the supervisor that listen on its port."""
    return [pid for pid in children(server.process.pid) if tcp(pid, server.port, "0A")]


def wait_for_workers(server: BoundedServer, n: int, timeout_s: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        pids = serving(server)
        if len(pids) == n:
            return pids
        assert time.monotonic() < deadline, f"{len(pids)} workers listening:\n{server.output()}"
        time.sleep(0.1)


def body(feature: str) -> dict[str, Any]:
    return {"model": feature, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def client(key: str = ADMIN_KEY, connections: int = 200) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers={"authorization": f"Bearer {key}"},
        timeout=120,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def burst(
    http: httpx.AsyncClient, server: BoundedServer, feature: str, n: int
) -> list[httpx.Response]:
    url = f"{server.base_url}/chat/completions"
    return list(await asyncio.gather(*(http.post(url, json=body(feature)) for _ in range(n))))


async def watched(server: BoundedServer, load: Coroutine[Any, Any, T]) -> tuple[T, dict[int, int]]:
    """Run ``load``; meanwhile, the most connections each worker held at once. (Sampled
    during the load: an idle keep-alive connection is closed by the server after 5 s.)"""
    task = asyncio.ensure_future(load)
    most: dict[int, int] = {}
    while not task.done():
        for pid in serving(server):
            most[pid] = max(most.get(pid, 0), established(pid, server.port))
        await asyncio.wait([task], timeout=0.02)
    return task.result(), most


def ledger(server: BoundedServer) -> Database:
    return Database.open(f"sqlite:///{server.store_dir / 'bounded.db'}", migrate=False)


async def test_200_concurrent_requests_cannot_overspend_a_budget_that_fits_50_with_2_workers(
    server: BoundedServer,
) -> None:
    async with client() as http:
        responses, spread = await watched(server, burst(http, server, "capped", 200))

    assert len(spread) == 2 and all(spread.values()), spread  # both workers took connections
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) == FITS, {r.status_code for r in responses}
    assert len(refused) == 200 - FITS
    for r in refused:
        error = r.json()["error"]
        assert error["code"] == "budget_exceeded"
        assert f"hard day budget of ${COST * FITS} for feature:capped" in error["message"]
    assert all(Decimal(r.headers["x-bounded-cost-usd"]) == COST for r in ok)
    db = ledger(server)
    try:
        rows = db.execute(
            "SELECT trace_id, cost_e10 FROM ledger WHERE feature = 'capped' AND status = 200"
        )
    finally:
        db.close()
    # Every answered request has its row, written once, and spend is exactly the budget.
    assert sorted(r["trace_id"] for r in rows) == sorted(
        r.headers["x-bounded-trace-id"] for r in ok
    )
    assert sum(Decimal(r["cost_e10"]) for r in rows) / Decimal(10**10) == COST * FITS


async def test_a_rate_limit_is_one_bucket_across_workers(server: BoundedServer) -> None:
    started = time.monotonic()
    async with client() as http:
        responses = await burst(http, server, "limited", 4 * RPM)
    elapsed = time.monotonic() - started
    ok = [r for r in responses if r.status_code == 200]
    # The bucket holds RPM and refills RPM per minute: in `elapsed` seconds, at most that
    # many more. Two buckets (one per worker) would let about 2 * RPM through.
    assert RPM <= len(ok) <= RPM + int(elapsed * RPM / 60), (len(ok), elapsed)
    refused = [r.json()["error"]["code"] for r in responses if r.status_code == 429]
    assert refused == ["rate_limit_exceeded"] * (len(responses) - len(ok))
    # The owner's x-ratelimit-* reach the client through either worker, as one bucket's.
    for r in ok:
        assert r.headers["x-ratelimit-limit-requests"] == str(RPM)
        assert 0 <= int(r.headers["x-ratelimit-remaining-requests"]) < RPM
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
    assert min(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == 0


async def test_a_key_revoked_with_the_cli_is_refused_by_every_worker(
    server: BoundedServer,
) -> None:
    created = server.cli("keys", "create", "workers-ci", "--feature", "open")
    assert created.returncode == 0, created.stderr
    key = next(word for word in created.stdout.split() if word.startswith("bnd_"))
    async with client(key) as http:
        before, spread = await watched(server, burst(http, server, "open", 100))
        assert {r.status_code for r in before} == {200}
        assert len(spread) == 2 and all(spread.values()), spread
        revoked = server.cli("keys", "revoke", "workers-ci")
        assert revoked.returncode == 0, revoked.stderr
        # The same 100 kept-alive connections, on both workers: every one is refused now.
        after = await burst(http, server, "open", 100)
    assert {r.status_code for r in after} == {401}


async def test_a_config_edit_reaches_every_worker(server: BoundedServer) -> None:
    data = yaml.safe_load(server.config_path.read_text())
    data["features"]["added"] = {"owner": "search", "route": {"targets": ["m"]}}
    server.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    deadline = time.monotonic() + 30
    while True:
        async with client() as http:  # fresh connections each round: both workers asked
            responses, spread = await watched(server, burst(http, server, "added", 40))
            if {r.status_code for r in responses} == {200}:
                assert len(spread) == 2 and all(spread.values()), spread
                return
        assert time.monotonic() < deadline, {(r.status_code, r.text[:300]) for r in responses}
        await asyncio.sleep(0.5)


async def test_a_breaker_opened_on_one_worker_is_open_on_every_worker(
    server: BoundedServer, upstream: FaultyUpstream
) -> None:
    url = f"{server.base_url}/chat/completions"
    async with client(connections=1) as http:  # one connection: one worker sees the failures
        for _ in range(4):
            failed = await http.post(url, json=body("fragile"))
            assert failed.status_code == 502, failed.text
    calls = upstream.count("broken")
    assert calls >= 4
    async with client() as http:  # 100 connections, on both workers
        responses, spread = await watched(server, burst(http, server, "fragile", 100))
        assert len(spread) == 2 and all(spread.values()), spread
    # Neither worker sent the deployment one more call: the breaker is open on both.
    assert upstream.count("broken") == calls
    assert {r.status_code for r in responses} == {502}
    assert {r.json()["error"]["code"] for r in responses} == {"no_healthy_deployment"}


async def test_killed_workers_are_replaced_and_their_budget_holds_come_back(
    server: BoundedServer, upstream: FaultyUpstream
) -> None:
    # Four slow requests reserve the whole of a budget that fits four, on both workers...
    upstream.script("slow", *[priced(delay_s=3)] * HELD)
    async with client() as http:
        url = f"{server.base_url}/chat/completions"
        pending = asyncio.gather(
            *(http.post(url, json=body("held")) for _ in range(HELD)), return_exceptions=True
        )
        while upstream.count("slow") < HELD:
            await asyncio.sleep(0.05)
        # ...and both workers die with them in flight (no ledger row, no settlement).
        victims = serving(server)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        lost = await pending
    assert all(isinstance(r, httpx.TransportError) for r in lost), lost  # cut off
    while any(Path(f"/proc/{pid}").exists() for pid in victims):
        await asyncio.sleep(0.05)
    assert not set(wait_for_workers(server, 2)) & set(victims)

    # The owner released their holds: the budget is whole again for the new workers.
    async with client() as http:
        again = await burst(http, server, "held", HELD + 1)
    assert sorted(r.status_code for r in again) == [200] * HELD + [429]
    assert server.output().count("worker process exited") >= 2


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_replicas_of_two_workers_on_redis_and_postgres_share_one_budget(
    tmp_path: Path, upstream: FaultyUpstream, postgres_url: str, redis_url: str
) -> None:
    data = config(upstream.base_url, store=postgres_url, redis=redis_url, reload=False)
    replicas: list[BoundedServer] = []
    try:
        for name in ("a", "b"):
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(data))
            replica = BoundedServer.spawn(
                path, free_port(), extra_args=["--workers", "2"], ready_timeout_s=90
            )
            replicas.append(replica)
            wait_for_workers(replica, 2)
        async with client() as http:
            responses = [
                r
                for part in await asyncio.gather(
                    *(burst(http, replica, "capped", 100) for replica in replicas)
                )
                for r in part
            ]
    finally:
        for replica in replicas:
            replica.stop()
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == FITS, {r.status_code for r in responses}
    db = Database.open(postgres_url, migrate=False)
    try:
        rows = db.execute("SELECT cost_e10 FROM ledger WHERE feature = 'capped' AND status = 200")
    finally:
        db.close()
    assert len(rows) == FITS
    assert sum(Decimal(r["cost_e10"]) for r in rows) / Decimal(10**10) == COST * FITS
