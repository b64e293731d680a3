"""The anthropic provider end to end: the official openai SDK -> the real gateway -> the
provider -> an Anthropic stand-in that speaks the documented Messages format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from bounded.config.schema import ProviderConfig
from bounded.errors import BadRequest, Unavailable
from bounded.providers.anthropic import AnthropicProvider
from bounded.providers.anthropic_translate import to_messages_request
from bounded.providers.base import ChatRequest
from tests.conftest import ADMIN_KEY, free_port, serve_in_thread
from tests.standins.anthropic_upstream import API_KEY, AnthropicStandIn

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AnthropicStandIn, str]]:
    upstream = AnthropicStandIn()
    with serve_in_thread(upstream.app()) as url:
        yield upstream, url


@pytest.fixture
def upstream(served: tuple[AnthropicStandIn, str]) -> AnthropicStandIn:
    served[0].reset()
    return served[0]


def config(*base_urls: str, api_key: str = API_KEY) -> dict[str, Any]:
    """One anthropic deployment per URL; feature "support" routes over them in order."""
    providers = {
        f"claude{i}": {"kind": "anthropic", "base_url": url, "api_key": api_key}
        for i, url in enumerate(base_urls)
    }
    models: dict[str, Any] = {
        f"sonnet{i}": {"provider": f"claude{i}", "model": f"claude-sonnet-{i}"}
        for i in range(len(base_urls))
    }
    models["claude-embed"] = {"provider": "claude0", "model": "none", "kind": "embedding"}
    route = {"targets": [f"sonnet{i}" for i in range(len(base_urls))], "retry": {"attempts": 1}}
    features = {
        "support": {"owner": "support-team", "route": route},
        "terse": {"owner": "support-team", "route": route, "prompt": {"system": "You are terse."}},
    }
    return {"providers": providers, "models": models, "features": features}


@pytest.fixture
def client(
    gateway_factory: Any, served: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> Iterator[OpenAI]:
    with (
        gateway_factory(config(served[1])) as (url, _gateway),
        OpenAI(base_url=url + "/v1", api_key=ADMIN_KEY, max_retries=0) as sdk,
    ):
        yield sdk


def test_completion_translates_reply_and_usage(client: OpenAI, upstream: AnthropicStandIn) -> None:
    upstream.script.text = "Paris is the capital of France."
    upstream.script.input_tokens, upstream.script.output_tokens = 5, 9
    upstream.script.cache_read_input_tokens = 100
    upstream.script.cache_creation_input_tokens = 20

    reply = client.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": "Capital of France?"}],
        max_tokens=50,
        temperature=1.5,
        stop=["\n\n"],
    )

    assert reply.choices[0].message.content == "Paris is the capital of France."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "support"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (125, 9)
    assert reply.usage.total_tokens == 134
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 100
    sent, headers = upstream.last_request, upstream.headers[-1]
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert sent["model"] == "claude-sonnet-0"
    assert sent["max_tokens"] == 50
    assert sent["stop_sequences"] == ["\n\n"]
    assert sent["temperature"] == 1.0  # clamped to Anthropic's range
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}
    ]


def test_max_tokens_defaults_and_length_finish(client: OpenAI, upstream: AnthropicStandIn) -> None:
    upstream.script.stop_reason = "max_tokens"
    reply = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "Go on"}]
    )
    assert reply.choices[0].finish_reason == "length"
    assert upstream.last_request["max_tokens"] == 4096


def test_system_and_developer_messages_become_top_level_system(
    client: OpenAI, upstream: AnthropicStandIn
) -> None:
    client.chat.completions.create(
        model="terse",  # the feature's prompt adds "You are terse." first
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "developer", "content": "Never mention prices."},
            {"role": "user", "content": "Weather?"},
        ],
    )
    sent = upstream.last_request
    assert sent["system"] == "You are terse.\n\nAnswer in French.\n\nNever mention prices."
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_json_schema_becomes_a_system_instruction(
    client: OpenAI, upstream: AnthropicStandIn
) -> None:
    upstream.script.text = '{"city": "Paris"}'
    reply = client.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": "Where?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "place",
                "schema": {"type": "object", "properties": {"city": {}}},
            },
        },
    )
    assert reply.choices[0].message.content == '{"city": "Paris"}'
    assert "JSON Schema" in upstream.last_request["system"]
    assert '"city"' in upstream.last_request["system"]


def test_streamed_completion(client: OpenAI, upstream: AnthropicStandIn) -> None:
    upstream.script.text = "Streaming works across several deltas."
    upstream.script.cache_read_input_tokens = 30
    chunks = list(
        client.chat.completions.create(
            model="support",
            messages=[{"role": "user", "content": "Stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Streaming works across several deltas."
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (42, 7)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 30
    assert upstream.last_request["stream"] is True
    assert "stream_options" not in upstream.last_request


def test_stream_without_include_usage_has_no_usage_chunk(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_tool_round_trip(client: OpenAI, upstream: AnthropicStandIn) -> None:
    upstream.script.text = ""
    upstream.script.tool_uses = [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Oslo?"}]

    reply = client.chat.completions.create(
        model="support", messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
    )

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_weather", '{"city":"Oslo"}'),
    ]
    sent = upstream.last_request
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert sent["tool_choice"] == {"type": "any"}

    upstream.script.tool_uses, upstream.script.text = [], "Sunny in Paris, rain in Oslo."
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 24C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "rain, 9C"},
        {"role": "user", "content": "Thanks, and tomorrow?"},
    ]
    follow = client.chat.completions.create(
        model="support", messages=messages, tools=[WEATHER_TOOL]
    )

    assert follow.choices[0].message.content == "Sunny in Paris, rain in Oslo."
    sent = upstream.last_request
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": calls[0].id, "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": calls[1].id, "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": calls[0].id, "content": "sunny, 24C"},
        {"type": "tool_result", "tool_use_id": calls[1].id, "content": "rain, 9C"},
        {"type": "text", "text": "Thanks, and tomorrow?"},
    ]


def test_streamed_tool_call(client: OpenAI, upstream: AnthropicStandIn) -> None:
    upstream.script.text = "Let me check."
    upstream.script.tool_uses = [("get_weather", {"city": "Reykjavik"})]
    chunks = list(
        client.chat.completions.create(
            model="support",
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            parallel_tool_calls=False,
            stream=True,
        )
    )

    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    assert {d.index for d in deltas} == {0}
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert arguments == '{"city":"Reykjavik"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert upstream.last_request["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }


def test_overloaded_becomes_a_gateway_error(client: OpenAI, upstream: AnthropicStandIn) -> None:
    upstream.script.error = (529, "overloaded_error", "Overloaded")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.code == "unavailable"
    assert "Overloaded" in caught.value.message


def test_overloaded_falls_back_to_the_second_deployment(
    gateway_factory: Any, served: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    upstream.script.error = (529, "overloaded_error", "Overloaded")
    backup = AnthropicStandIn()
    backup.script.text = "Answered by the backup."
    with (
        serve_in_thread(backup.app()) as backup_url,
        gateway_factory(config(served[1], backup_url)) as (url, _gw),
        OpenAI(base_url=url + "/v1", api_key=ADMIN_KEY, max_retries=0) as sdk,
    ):
        raw = sdk.chat.completions.with_raw_response.create(
            model="support", messages=[{"role": "user", "content": "Hi"}]
        )
    reply = raw.parse()
    assert reply.choices[0].message.content == "Answered by the backup."
    assert raw.headers["x-bounded-route"] == "sonnet1"
    assert raw.headers["x-bounded-attempts"] == "2"
    assert len(upstream.requests) == 1 and backup.last_request["model"] == "claude-sonnet-1"


def test_rate_limit_keeps_retry_after(client: OpenAI, upstream: AnthropicStandIn) -> None:
    upstream.script.error = (429, "rate_limit_error", "Number of request tokens has exceeded")
    upstream.script.retry_after = "30"
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.response.headers["retry-after"] == "30"


def test_prompt_too_long_is_context_length_exceeded(
    client: OpenAI, upstream: AnthropicStandIn
) -> None:
    upstream.script.error = (
        400,
        "invalid_request_error",
        "prompt is too long: 210000 tokens > 200000 maximum",
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="support", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "context_length_exceeded"


def test_misconfigured_key_is_an_upstream_error_not_a_401(
    gateway_factory: Any, served: tuple[AnthropicStandIn, str], upstream: AnthropicStandIn
) -> None:
    with (
        gateway_factory(config(served[1], api_key="wrong")) as (url, _gw),
        OpenAI(base_url=url + "/v1", api_key=ADMIN_KEY, max_retries=0) as sdk,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        sdk.chat.completions.create(model="support", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 502
    assert "authentication_error" in caught.value.message


def test_error_event_mid_stream_raises_in_the_sdk(
    client: OpenAI, upstream: AnthropicStandIn
) -> None:
    upstream.script.stream_error = ("overloaded_error", "Overloaded")
    stream = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "Hello fr"  # the first delta reached the client
    assert "Overloaded" in caught.value.message


def test_stream_cut_before_message_stop_raises(client: OpenAI, upstream: AnthropicStandIn) -> None:
    upstream.script.truncate_stream = True
    stream = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "message_stop" in caught.value.message


def test_embeddings_are_a_clear_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="claude-embed", input="hello")
    assert "no embeddings API" in caught.value.message


def test_images_translate_and_unsupported_parts_are_rejected() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    }
    blocks = to_messages_request(body, stream=False)["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }
    audio = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}],
            }
        ],
    }
    with pytest.raises(BadRequest):
        to_messages_request(audio, stream=False)


async def test_unreachable_upstream_is_unavailable() -> None:
    config = ProviderConfig(kind="anthropic", base_url=f"http://127.0.0.1:{free_port()}")
    provider = AnthropicProvider("claude", config)
    body = {"model": "claude-sonnet-0", "messages": [{"role": "user", "content": "Hi"}]}
    try:
        with pytest.raises(Unavailable, match="connection failed"):
            await provider.complete(ChatRequest(body, timeout_s=5))
    finally:
        await provider.aclose()
