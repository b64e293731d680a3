"""Every token that reached a client is charged, and a hard budget's promise is exact.

A real gateway (uvicorn, SQLite) in front of the fault-injecting stand-in upstream. The
deployment is priced at $1 per million input and $1000 per million output tokens, so one
output token costs $0.001 and costs in the ledger count tokens.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from bounded.store.db import Database
from bounded.store.keys import KeyRepository
from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import (
    FaultyUpstream,
    embedded,
    reporting,
    status,
    stream,
    stream_error,
    stream_unfinished,
)

PRICE = {"input": "1", "output": "1000"}
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


def config(base_url: str, **feature: Any) -> dict[str, Any]:
    return {
        "server": {"dev_key": False, "reload": False},
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "sk-standin"}},
        "models": {
            "m": {"provider": "up", "model": "m", "price": PRICE},
            "emb": {
                "provider": "up",
                "model": "text-embedding-3-small",
                "kind": "embedding",
                "price": {"input": "1000", "output": "0"},
            },
        },
        "breaker": {"window": 4, "min_calls": 4, "failure_rate": 0.5, "cooldown_s": 600},
        "features": {"chat": {"owner": "econ", "route": {"targets": ["m"]}, **feature}},
    }


def rows(db: Database, **where: Any) -> list[Any]:
    clause = " AND ".join(f"{k} = ?" for k in where) or "1 = 1"
    return db.execute(f"SELECT * FROM ledger WHERE {clause} ORDER BY id", tuple(where.values()))


def stream_text(url: str, **body: Any) -> tuple[str, str | None]:
    """Read a stream to its end with the OpenAI SDK: the text and the finish reason."""
    text, finish = "", None
    with openai.OpenAI(base_url=url + "/v1", api_key=ADMIN_KEY, max_retries=0) as client:
        chunks = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True, **body
        )
        for chunk in chunks:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
    return text, finish


@pytest.fixture
def upstream() -> Any:
    with FaultyUpstream().running() as up:
        yield up


@pytest.mark.parametrize(
    "behaviour",
    [stream_error(after_tokens=["one", " two", " three"]), stream_unfinished(["one", " two"])],
    ids=["error-event", "cut-off"],
)
def test_tokens_streamed_before_a_failure_are_charged(
    gateway_factory: Any, db: Database, upstream: FaultyUpstream, behaviour: Any
) -> None:
    upstream.always("m", behaviour)
    gateway = gateway_factory(config(upstream.base_url, budget={"amount_usd": 1}))
    with gateway as (url, _), pytest.raises(openai.APIError):
        stream_text(url, max_tokens=50)
    (row,) = rows(db, feature="chat")
    assert row["status"] >= 500
    assert row["output_tokens"] >= 2  # counted from the text the client received
    assert row["usage_source"] == "counted"
    assert row["cost_e10"] > 0


def test_a_stream_the_client_drops_is_charged(
    gateway_factory: Any, db: Database, upstream: FaultyUpstream
) -> None:
    upstream.always("m", stream(["tok"] * 50, gap_s=0.05))
    with gateway_factory(config(upstream.base_url)) as (url, _):
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=AUTH) as r:
            received = 0
            for line in r.iter_lines():
                received += "tok" in line
                if received == 5:
                    break
        for _ in range(200):  # the gateway settles a dropped stream in the background
            if rows(db, feature="chat"):
                break
            time.sleep(0.05)
    (row,) = rows(db, feature="chat")
    assert row["status"] == 499
    assert row["output_tokens"] >= 5
    assert row["cost_e10"] > 0


def test_a_reserved_stream_is_cut_at_its_max_tokens(
    gateway_factory: Any, db: Database, upstream: FaultyUpstream
) -> None:
    """An upstream that ignores max_tokens cannot spend past the reservation of a stream."""
    upstream.always("m", stream([" word"] * 200))
    with gateway_factory(config(upstream.base_url, budget={"amount_usd": 1})) as (url, _):
        text, finish = stream_text(url, max_tokens=7)
    assert finish == "length"
    assert text.count("word") <= 8
    (row,) = rows(db, feature="chat")
    assert row["status"] == 200
    assert row["output_tokens"] <= 8
    assert "cut_at_max_tokens" in row["flags"]


def test_an_upstream_reporting_past_max_tokens_is_charged_and_flagged(
    gateway_factory: Any,
    db: Database,
    upstream: FaultyUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The ledger keeps the true cost, the row and the log say so, and the budget it
    passed stops every later request (what docs/economics.md promises)."""
    upstream.always("m", reporting(completion_tokens=70))
    # 7 output tokens cost $0.007 and the prompt well under $0.001: room for 4 requests.
    feature = {"budget": {"amount_usd": "0.032"}}
    gateway = gateway_factory(config(upstream.base_url, **feature))
    with caplog.at_level(logging.WARNING, "bounded.economics"), gateway as (url, _):
        ask = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7}
        first = httpx.post(url + "/v1/chat/completions", json=ask, headers=AUTH)
        second = httpx.post(url + "/v1/chat/completions", json=ask, headers=AUTH)
    assert first.status_code == 200
    assert Decimal(first.headers["x-bounded-cost-usd"]) == Decimal("0.070003")
    assert second.status_code == 429  # the overrun spent the budget: nothing more passes
    flagged = rows(db, feature="chat", status=200)
    assert len(flagged) == 1
    assert flagged[0]["output_tokens"] == 70
    assert set(flagged[0]["flags"].split(",")) == {"over_max_tokens", "over_reservation"}
    assert any("more than the" in r.message and "reserved" in r.message for r in caplog.records)


def test_embeddings_are_metered_like_chat(
    gateway_factory: Any, db: Database, keys: KeyRepository, upstream: FaultyUpstream
) -> None:
    upstream.always("text-embedding-3-small", embedded(prompt_tokens=10))
    _, key = keys.create("embedder", features=["emb"], limits={"rate_limit": {"rpm": 2}})
    with (
        gateway_factory(config(upstream.base_url)) as (url, _),
        openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client,
    ):
        raw = client.embeddings.with_raw_response.create(model="emb", input=["a", "b"])
        assert Decimal(raw.headers["x-bounded-cost-usd"]) == Decimal("0.01")
        client.embeddings.create(model="emb", input="c")
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="emb", input="d")
    found = rows(db, operation="embeddings")
    assert [r["status"] for r in found] == [200, 200, 429]
    assert found[0]["input_tokens"] == 10
    assert found[0]["model"] == "text-embedding-3-small"


def test_embeddings_have_a_breaker(
    gateway_factory: Any, db: Database, upstream: FaultyUpstream
) -> None:
    upstream.always("text-embedding-3-small", status(503))
    with gateway_factory(config(upstream.base_url)) as (url, gateway):
        for _ in range(3):
            resp = httpx.post(
                url + "/v1/embeddings", json={"model": "emb", "input": "x"}, headers=AUTH
            )
            assert resp.status_code == 502
        assert gateway.runtime.router.breakers["emb"].state.value == "open"
    assert len(rows(db, operation="embeddings")) == 3
