"""Streams through the router, read with the official openai SDK.

Before the first token a failing stream falls back like any request; after it, the client
has text in hand, so the failure must reach it as an error, never as a silently short answer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import (
    FaultyUpstream,
    Json,
    ok,
    rate_limited,
    reset,
    routed_config,
    status,
    stream,
    stream_error,
    stream_unfinished,
)

TIMEOUT_S = 0.5
# How long the slow faults below keep the stream waiting. A busy machine only slows the
# answer, so "the timeout cut it short" is asserted as well under this, not just above it.
STALL_S = 5
ROUTE = {"targets": ["primary", "backup"], "retry": {"attempts": 1}, "timeout_s": TIMEOUT_S}
MESSAGES = [{"role": "user", "content": "hi"}]
NO_BREAKER = {"window": 20, "min_calls": 20}


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget().always("backup", ok("answer from the backup"))
    return standin


@contextlib.contextmanager
def sdk_for(
    gateway_factory: Callable[..., Any],
    upstream: FaultyUpstream,
    route: Json,
    breaker: Json | None = None,
) -> Iterator[openai.OpenAI]:
    """A gateway serving ``route`` and an SDK client for it, closed after.

    No SDK retries: every request the stand-in counts was sent by the gateway.
    """
    with (
        gateway_factory(routed_config(upstream.base_url, route, breaker=breaker)) as (url, _),
        openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=10) as sdk,
    ):
        yield sdk


def read_text(chunks: Iterable[ChatCompletionChunk]) -> tuple[str, list[str]]:
    """The streamed text and the finish reasons seen, read to the end."""
    text, finishes = [], []
    for chunk in chunks:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return "".join(text), finishes


PRE_TOKEN_FAULTS = {
    "error-event-after-role-chunk": stream_error(),
    "503": status(503),
    "429": rate_limited(),
    "connection-reset": reset(),
    "ends-before-a-token": stream_unfinished(tokens=()),
    "first-token-after-the-timeout": stream(first_delay_s=STALL_S),
}


def test_a_stream_failing_before_its_first_token_falls_back(upstream, gateway_factory, subtests):
    # One gateway serves every case; a breaker that cannot reach min_calls keeps them apart.
    with sdk_for(gateway_factory, upstream, ROUTE, breaker=NO_BREAKER) as sdk:
        for name, fault in PRE_TOKEN_FAULTS.items():
            with subtests.test(fault=name):
                upstream.forget().always("backup", ok("answer from the backup"))
                upstream.script("primary", fault)
                started = time.monotonic()
                raw = sdk.chat.completions.with_raw_response.create(
                    model="chat", messages=MESSAGES, stream=True
                )
                text, finishes = read_text(raw.parse())
                elapsed = time.monotonic() - started
                assert raw.headers["x-bounded-route"] == "backup"
                assert raw.headers["x-bounded-attempts"] == "2"
                assert text == "answer from the backup"
                assert finishes == ["stop"]
                assert (upstream.count("primary"), upstream.count("backup")) == (1, 1)
                assert elapsed < STALL_S - 1


def test_an_error_after_tokens_reaches_the_sdk_as_an_exception(upstream, gateway_factory):
    upstream.script(
        "primary", stream_error(after_tokens=["Hel", "lo"], message="overloaded mid-answer")
    )
    with sdk_for(gateway_factory, upstream, ROUTE) as sdk:
        chunks = sdk.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        seen: list[str] = []
        with pytest.raises(openai.APIError, match="overloaded mid-answer"):
            for chunk in chunks:
                seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen) == "Hello"
    assert upstream.count("backup") == 0  # committed: the text already sent cannot be redone


def test_a_stream_that_stops_without_finishing_is_an_error(upstream, gateway_factory):
    upstream.script("primary", stream_unfinished(tokens=["Half", " an"]))
    with sdk_for(gateway_factory, upstream, ROUTE) as sdk:
        chunks = sdk.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match="ended before it finished"):
            read_text(chunks)
    assert upstream.count("backup") == 0


def test_a_stall_between_chunks_longer_than_the_timeout_is_an_error(upstream, gateway_factory):
    upstream.script("primary", stream(["first", " second"], gap_s=STALL_S))
    with sdk_for(gateway_factory, upstream, ROUTE) as sdk:
        started = time.monotonic()
        chunks = sdk.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match=f"no next stream chunk within {TIMEOUT_S}s"):
            read_text(chunks)
        elapsed = time.monotonic() - started
    assert elapsed < STALL_S - 1


def test_a_slow_stream_within_its_timeout_is_delivered_whole(upstream, gateway_factory):
    # Every gap is under the 1 s timeout (by 0.75 s, room for a busy machine) though the
    # whole stream takes longer than that.
    timeout_s = 1.0
    tokens = ["one", " two", " three", " four", " five"]
    upstream.script("primary", stream(tokens, first_delay_s=0.25, gap_s=0.25))
    with sdk_for(gateway_factory, upstream, {**ROUTE, "timeout_s": timeout_s}) as sdk:
        started = time.monotonic()
        raw = sdk.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, stream=True
        )
        text, finishes = read_text(raw.parse())
        elapsed = time.monotonic() - started
    assert raw.headers["x-bounded-route"] == "primary"
    assert text == "one two three four five"
    assert finishes == ["stop"]
    assert elapsed > timeout_s


def test_an_in_stream_error_is_classified_like_the_http_one(upstream, gateway_factory):
    """A prompt-too-long reported as a stream event is a 400 for the client, not an outage."""
    upstream.script(
        "primary",
        stream_error(
            message="This model's maximum context length is 8192 tokens",
            code="context_length_exceeded",
        ),
    )
    route = {**ROUTE, "targets": ["primary"]}
    with (
        sdk_for(gateway_factory, upstream, route) as sdk,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        sdk.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 400
    assert caught.value.code == "context_length_exceeded"
