"""Streams through the router, read with the official openai SDK.

Before the first token a failing stream falls back like any request; after it, the client
has text in hand, so the failure must reach it as an error, never as a silently short answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import (
    Behaviour,
    FaultyUpstream,
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
ROUTE = {"targets": ["primary", "backup"], "retry": {"attempts": 1}, "timeout_s": TIMEOUT_S}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def standin() -> Iterator[FaultyUpstream]:
    with FaultyUpstream().running() as up:
        yield up


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget().always("backup", ok("answer from the backup"))
    return standin


def client(url: str) -> openai.OpenAI:
    # No SDK retries: every request the stand-in counts was sent by the gateway.
    return openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=10)


def read_text(chunks: Iterable[ChatCompletionChunk]) -> tuple[str, list[str]]:
    """The streamed text and the finish reasons seen, read to the end."""
    text, finishes = [], []
    for chunk in chunks:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return "".join(text), finishes


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(stream_error(), id="error-event-after-role-chunk"),
        pytest.param(status(503), id="503"),
        pytest.param(rate_limited(), id="429"),
        pytest.param(reset(), id="connection-reset"),
        pytest.param(stream_unfinished(tokens=()), id="ends-before-a-token"),
        pytest.param(stream(first_delay_s=5), id="first-token-after-the-timeout"),
    ],
)
def test_a_stream_failing_before_its_first_token_falls_back(
    fault: Behaviour, upstream, gateway_factory
):
    upstream.script("primary", fault)
    with gateway_factory(routed_config(upstream.base_url, ROUTE)) as (url, _):
        started = time.monotonic()
        raw = client(url).chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, stream=True
        )
        text, finishes = read_text(raw.parse())
        elapsed = time.monotonic() - started
    assert raw.headers["x-bounded-route"] == "backup"
    assert raw.headers["x-bounded-attempts"] == "2"
    assert text == "answer from the backup"
    assert finishes == ["stop"]
    assert (upstream.count("primary"), upstream.count("backup")) == (1, 1)
    assert elapsed < TIMEOUT_S + 1.0


def test_an_error_after_tokens_reaches_the_sdk_as_an_exception(upstream, gateway_factory):
    upstream.script(
        "primary", stream_error(after_tokens=["Hel", "lo"], message="overloaded mid-answer")
    )
    with gateway_factory(routed_config(upstream.base_url, ROUTE)) as (url, _):
        chunks = client(url).chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        seen: list[str] = []
        with pytest.raises(openai.APIError, match="overloaded mid-answer"):
            for chunk in chunks:
                seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen) == "Hello"
    assert upstream.count("backup") == 0  # committed: the text already sent cannot be redone


def test_a_stream_that_stops_without_finishing_is_an_error(upstream, gateway_factory):
    upstream.script("primary", stream_unfinished(tokens=["Half", " an"]))
    with gateway_factory(routed_config(upstream.base_url, ROUTE)) as (url, _):
        chunks = client(url).chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match="ended before it finished"):
            read_text(chunks)
    assert upstream.count("backup") == 0


def test_a_stall_between_chunks_longer_than_the_timeout_is_an_error(upstream, gateway_factory):
    upstream.script("primary", stream(["first", " second"], gap_s=5))
    with gateway_factory(routed_config(upstream.base_url, ROUTE)) as (url, _):
        started = time.monotonic()
        chunks = client(url).chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match=f"no next stream chunk within {TIMEOUT_S}s"):
            read_text(chunks)
        elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT_S + 1.0


def test_a_slow_stream_within_its_timeout_is_delivered_whole(upstream, gateway_factory):
    tokens = ["one", " two", " three", " four"]
    upstream.script("primary", stream(tokens, first_delay_s=0.2, gap_s=0.2))
    with gateway_factory(routed_config(upstream.base_url, ROUTE)) as (url, _):
        raw = client(url).chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, stream=True
        )
        text, finishes = read_text(raw.parse())
    assert raw.headers["x-bounded-route"] == "primary"
    assert text == "one two three four"
    assert finishes == ["stop"]


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
        gateway_factory(routed_config(upstream.base_url, route)) as (url, _),
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client(url).chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 400
    assert caught.value.code == "context_length_exceeded"
