"""A response that reached the client has its ledger row, even when the server is killed.

``bounded serve`` (a real subprocess, SQLite store in WAL mode, the embedded local model)
takes concurrent plain and streamed requests; once some have been answered it gets
SIGKILL, with others still in flight. After a restart on the same store, every response
the client received in full (a parsed 200 body, or a stream that reached ``[DONE]``) has
exactly one ledger row, and no row is duplicated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import pytest

from bounded.store.db import Database
from tests.e2e.server import ADMIN_KEY, BoundedServer, free_port

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(find_spec("llama_cpp") is None, reason="needs the `local` extra"),
]

REQUESTS = 48  # half of them streamed
KILL_AFTER = 16  # complete responses received before the kill
CONFIG: dict[str, Any] = {
    "server": {"dev_key": False, "reload": False},
    "providers": {"local": {"kind": "local"}},
    "models": {
        "smol": {
            "provider": "local",
            "model": "smollm2-135m-instruct",
            "price": {"input": "0.5", "output": "1.5"},
        }
    },
    "features": {
        "answer": {
            "owner": "support",
            "route": {"targets": ["smol"], "timeout_s": 300, "deadline_s": 600},
        },
    },
}
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BoundedServer]:
    with BoundedServer.start(tmp_path, CONFIG, ready_timeout_s=90) as server:
        yield server


class Received:
    """Trace ids of the responses this client got in full, and a signal to kill."""

    def __init__(self) -> None:
        self.traces: list[str] = []
        self.enough = asyncio.Event()

    def add(self, trace_id: str) -> None:
        self.traces.append(trace_id)
        if len(self.traces) >= KILL_AFTER:
            self.enough.set()


async def plain(http: httpx.AsyncClient, received: Received) -> None:
    body = {"model": "answer", "messages": STORY, "max_tokens": 6, "temperature": 0}
    try:
        r = await http.post("/v1/chat/completions", json=body)
        reply = r.json()
    except (httpx.HTTPError, json.JSONDecodeError):
        return  # cut off by the kill: the client never got this answer
    if r.status_code == 200 and reply["choices"][0]["message"]["content"]:
        received.add(r.headers["x-bounded-trace-id"])


async def streamed(http: httpx.AsyncClient, received: Received) -> None:
    body = {
        "model": "answer",
        "messages": STORY,
        "max_tokens": 6,
        "temperature": 0,
        "stream": True,
    }
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body) as r:
            done = False
            async for line in r.aiter_lines():
                done = done or line == "data: [DONE]"
    except httpx.HTTPError:
        return
    if r.status_code == 200 and done:
        received.add(r.headers["x-bounded-trace-id"])


async def test_every_received_response_has_exactly_one_ledger_row(
    server: BoundedServer,
) -> None:
    received = Received()
    limits = httpx.Limits(max_connections=REQUESTS)
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, timeout=600, limits=limits
    ) as http:
        calls = [
            asyncio.create_task(streamed(http, received) if i % 2 else plain(http, received))
            for i in range(REQUESTS)
        ]
        await asyncio.wait_for(received.enough.wait(), timeout=300)
        server.process.kill()  # SIGKILL: no shutdown, no flush, mid-load
        await asyncio.gather(*calls)

    assert server.process.wait(timeout=10) == -9
    # Killed mid-load: some requests were still in flight and never answered.
    assert KILL_AFTER <= len(received.traces) < REQUESTS

    restarted = BoundedServer.spawn(server.config_path, free_port(), ready_timeout_s=90)
    try:
        db = Database.open(f"sqlite:///{server.store_dir / 'bounded.db'}")
        try:
            rows = db.execute("SELECT trace_id, status, cost_e10 FROM ledger")
        finally:
            db.close()
    finally:
        restarted.stop()

    by_trace: dict[str, list[Any]] = {}
    for row in rows:
        by_trace.setdefault(row["trace_id"], []).append(row)
    duplicated = {trace for trace, found in by_trace.items() if len(found) > 1}
    assert not duplicated
    missing = [trace for trace in received.traces if trace not in by_trace]
    assert not missing, f"{len(missing)} answered responses have no ledger row"
    for trace in received.traces:
        (row,) = by_trace[trace]
        assert row["status"] == 200 and row["cost_e10"] > 0
