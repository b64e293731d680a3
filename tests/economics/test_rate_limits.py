"""Rate limits: requests and tokens per minute, with x-ratelimit-* headers and retry-after.

A real gateway (uvicorn on a loopback port, SQLite store) in front of the embedded local
model; limits are token buckets refilled continuously, so a refused client that waits the
retry-after it was given gets in.
"""

from __future__ import annotations

import asyncio
import re
import time
from importlib.util import find_spec
from typing import Any

import httpx
import pytest

from bounded.economics.accountant import reset_duration
from tests.conftest import ADMIN_KEY

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(find_spec("llama_cpp") is None, reason="needs the `local` extra"),
]

STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
# Generous: the model answers one request at a time, on cores shared with other work.
ROUTE = {"targets": ["smol"], "timeout_s": 300, "deadline_s": 600}


def config(**features: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": {"dev_key": False, "reload": False},
        "providers": {"local": {"kind": "local"}},
        "models": {"smol": {"provider": "local", "model": "smollm2-135m-instruct"}},
        "features": {
            name: {"owner": "owners", "route": ROUTE, **extra} for name, extra in features.items()
        },
    }


def body(feature: str, max_tokens: int = 2) -> dict[str, Any]:
    return {"model": feature, "messages": STORY, "max_tokens": max_tokens, "temperature": 0}


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=600,
        limits=httpx.Limits(max_connections=32),
    )


async def test_requests_per_minute_refuse_then_admit_after_retry_after(
    gateway_factory: Any,
) -> None:
    rpm = 20  # one request back every 3 s
    with gateway_factory(config(limited={"rate_limit": {"rpm": rpm}})) as (url, _):
        async with client(url) as http:
            burst = await asyncio.gather(
                *(http.post("/v1/chat/completions", json=body("limited")) for _ in range(rpm + 2))
            )
            ok = [r for r in burst if r.status_code == 200]
            refused = [r for r in burst if r.status_code == 429]
            assert len(ok) == rpm and len(refused) == 2

            for r in ok:
                assert r.headers["x-ratelimit-limit-requests"] == str(rpm)
            # Each admitted request took one from the bucket, and says how many are left.
            remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok)
            assert remaining == list(range(rpm))
            for r in refused:
                error = r.json()["error"]
                assert error["type"] == "rate_limit_error"
                assert error["code"] == "rate_limit_exceeded"
                assert (
                    f"rate limit of {rpm} requests per minute for feature:limited"
                    in (error["message"])
                )
                assert r.headers["x-ratelimit-limit-requests"] == str(rpm)
                assert r.headers["x-ratelimit-remaining-requests"] == "0"
                # OpenAI's spelling (Go durations): the SDKs' and proxies' parsers read it.
                reset = r.headers["x-ratelimit-reset-requests"]
                assert re.fullmatch(r"\d+ms|(\d+m)?\d+(\.\d{1,3})?s", reset), reset
            wait = max(int(r.headers["retry-after"]) for r in refused)
            assert 1 <= wait <= 60 // rpm

            await asyncio.sleep(wait)
            again = await http.post("/v1/chat/completions", json=body("limited"))
    assert again.status_code == 200, again.text


async def test_tokens_per_minute_count_the_tokens_actually_used(gateway_factory: Any) -> None:
    tpm = 120  # refills 2 tokens a second
    with gateway_factory(config(limited={"rate_limit": {"tpm": tpm}})) as (url, _):
        async with client(url) as http:
            too_big = await http.post("/v1/chat/completions", json=body("limited", 500))
            assert too_big.status_code == 429
            assert too_big.json()["error"]["code"] == "rate_limit_exceeded"
            assert (
                f"allows {tpm} per minute; lower max_tokens" in too_big.json()["error"]["message"]
            )
            assert "retry-after" not in too_big.headers  # waiting would never help

            admitted: list[httpx.Response] = []
            started = time.monotonic()
            while len(admitted) < 10:
                r = await http.post("/v1/chat/completions", json=body("limited"))
                if r.status_code != 200:
                    break
                admitted.append(r)
                if len(admitted) == 2:
                    two_took = time.monotonic() - started

    # A request reserves its exact prompt tokens (the local model counts with its own chat
    # template) plus max_tokens...
    first, second = admitted[0], admitted[1]
    reserved = tpm - int(first.headers["x-ratelimit-remaining-tokens"])
    assert reserved == first.json()["usage"]["prompt_tokens"] + 2
    # ...and once answered is charged what it used: between the first and second request
    # the bucket lost the first one's tokens, less what refilled.
    used = first.json()["usage"]["total_tokens"]
    drop = int(first.headers["x-ratelimit-remaining-tokens"]) - int(
        second.headers["x-ratelimit-remaining-tokens"]
    )
    refilled = two_took * tpm / 60
    assert used - refilled - 1 <= drop <= used + 1
    # So the limit stops a client after about tpm tokens of real use.
    elapsed = time.monotonic() - started
    spent = sum(a.json()["usage"]["total_tokens"] for a in admitted)
    assert spent <= tpm + elapsed * tpm / 60 + reserved
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert f"rate limit of {tpm} tokens per minute" in r.json()["error"]["message"]
    assert r.headers["x-ratelimit-limit-tokens"] == str(tpm)
    assert r.headers["x-ratelimit-remaining-tokens"] == "0"
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_deployment_limit_falls_back_to_the_next_target(gateway_factory: Any) -> None:
    data = config(
        spread={"route": {**ROUTE, "targets": ["primary", "spare"]}},
        pinned={"route": {**ROUTE, "targets": ["primary"]}},
    )
    local = {"provider": "local", "model": "smollm2-135m-instruct"}
    data["models"] = {"primary": {**local, "rate_limit": {"rpm": 2}}, "spare": local}
    with gateway_factory(data) as (url, _):
        async with client(url) as http:
            routed = [
                await http.post("/v1/chat/completions", json=body("spread")) for _ in range(3)
            ]
            pinned = await http.post("/v1/chat/completions", json=body("pinned"))

    assert [r.status_code for r in routed] == [200, 200, 200]
    # The third request finds primary's limit used up and goes to spare, not to a 429.
    assert [r.headers["x-bounded-route"] for r in routed] == ["primary", "primary", "spare"]
    assert routed[2].headers["x-bounded-attempts"] == "1"  # primary was not called
    # With no other target, the deployment's limit is the client's 429, with the wait.
    assert pinned.status_code == 429
    error = pinned.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "2 requests per minute for deployment:primary" in error["message"]
    assert 1 <= int(pinned.headers["retry-after"]) <= 30


def test_reset_waits_are_spelled_as_openai_spells_them() -> None:
    assert [reset_duration(s) for s in (0, 6e-7, 0.012, 1, 17.5, 60, 77.142, 360)] == [
        "0s", "1ms", "12ms", "1s", "17.5s", "1m0s", "1m17.142s", "6m0s",
    ]  # fmt: skip
