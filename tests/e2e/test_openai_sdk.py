"""The official ``openai`` SDK against a real ``bounded serve`` with the embedded local model.

One server for the module: provider ``local`` (llama.cpp SmolLM2-135M, ONNX MiniLM), a chat
model ``smollm2``, an embedding model ``minilm`` and two features.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.e2e.server import ADMIN_KEY, BoundedServer

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(find_spec("llama_cpp") is None, reason="needs the `local` extra"),
]

SYSTEM = "You are a concise, friendly support assistant. Answer in one short sentence."
CONFIG: dict[str, Any] = {
    "providers": {"local": {"kind": "local"}},
    "models": {
        "smollm2": {"provider": "local", "model": "smollm2-135m-instruct", "context_window": 2048},
        "minilm": {"provider": "local", "model": "all-minilm-l6-v2", "kind": "embedding"},
    },
    "features": {
        "support-answer": {
            "owner": "support-team",
            "route": {"targets": ["smollm2"], "timeout_s": 300, "deadline_s": 600},
            "prompt": {"system": SYSTEM},
        },
        "other": {"owner": "growth-team", "route": {"targets": ["smollm2"]}},
    },
}
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoundedServer]:
    with BoundedServer.start(tmp_path_factory.mktemp("sdk"), CONFIG) as server:
        yield server


@pytest.fixture(scope="module")
def client(server: BoundedServer) -> Iterator[OpenAI]:
    # No SDK retries: a retried 5xx would hide a gateway bug behind a second attempt.
    with OpenAI(base_url=server.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=120) as client:
        yield client


def client_with(server: BoundedServer, key: str) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=120)


def create_key(server: BoundedServer, name: str, *features: str) -> str:
    args = [arg for f in features for arg in ("--feature", f)]
    result = server.cli("keys", "create", name, *args)
    assert result.returncode == 0, result.stderr
    found = re.search(r"\bbnd_[A-Za-z0-9_-]{40,}", result.stdout)
    assert found, result.stdout
    return found[0]


# -- chat -------------------------------------------------------------------------------------


def test_feature_answers_with_bounded_headers(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="support-answer", messages=CAPITAL, temperature=0, max_tokens=48
    )
    assert re.fullmatch(r"[0-9a-f]{32}", raw.headers["x-bounded-trace-id"])
    assert raw.headers["x-bounded-route"] == "smollm2"
    assert raw.headers["x-bounded-attempts"] == "1"
    reply = raw.parse()
    assert reply.object == "chat.completion"
    assert reply.model  # the SDK's model type requires it; a client may log it
    assert "paris" in (reply.choices[0].message.content or "").lower()
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_async_client(server: BoundedServer) -> None:
    async with AsyncOpenAI(
        base_url=server.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=120
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="support-answer", messages=CAPITAL, temperature=0, max_tokens=48
        )
    assert raw.headers["x-bounded-route"] == "smollm2"
    reply = raw.parse()
    assert "paris" in (reply.choices[0].message.content or "").lower()


def test_model_alias_directly(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Say hello."}],
        temperature=0,
        max_tokens=16,
    )
    assert raw.headers["x-bounded-route"] == "smollm2"
    assert (raw.parse().choices[0].message.content or "").strip()


@pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "with-usage"])
def test_streaming(client: OpenAI, include_usage: bool) -> None:
    options: Any = {"include_usage": True} if include_usage else openai.omit
    with client.chat.completions.create(
        model="support-answer",
        messages=CAPITAL,
        temperature=0,
        max_tokens=32,
        stream=True,
        stream_options=options,
    ) as stream:
        chunks = list(stream)
    assert chunks and all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in {"stop", "length"}
    with_usage = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(with_usage) == 1
        assert with_usage[0] is chunks[-1] and not chunks[-1].choices
        assert with_usage[0].usage is not None and with_usage[0].usage.completion_tokens > 0
    else:
        assert with_usage == []


# -- structured output and tools ----------------------------------------------------------------


def test_json_schema_response_format(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "country": {"type": "string"},
            "is_capital": {"type": "boolean"},
        },
        "required": ["city", "country", "is_capital"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="support-answer",
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        temperature=0,
        max_tokens=120,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "place", "schema": schema, "strict": True},
        },
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert set(data) == {"city", "country", "is_capital"}
    assert isinstance(data["city"], str) and isinstance(data["country"], str)
    assert isinstance(data["is_capital"], bool)


def test_forced_tool_call(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="support-answer",
        messages=[{"role": "user", "content": "What's the weather in Lyon, in celsius?"}],
        temperature=0,
        max_tokens=80,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = reply.choices[0]
    assert choice.message.tool_calls, choice.message
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str)
    assert arguments["unit"] in {"celsius", "fahrenheit"}
    # OpenAI answers a forced (named) tool_choice with finish_reason "stop"; "tool_calls" is
    # what an auto choice gives. Either is what SDK users branch on.
    assert choice.finish_reason in {"tool_calls", "stop"}


# -- embeddings ---------------------------------------------------------------------------------


def test_embeddings_base64_and_float(client: OpenAI) -> None:
    texts = ["How do I reset my password?", "Password reset steps", "The weather in Lyon"]
    default = client.embeddings.create(model="minilm", input=texts)  # the SDK asks for base64
    floats = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    for reply in (default, floats):
        assert [d.index for d in reply.data] == [0, 1, 2]
        assert all(len(d.embedding) == 384 for d in reply.data)
        assert reply.usage.prompt_tokens > 0
    for a, b in zip(default.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    v = [d.embedding for d in floats.data]
    close, far = _dot(v[0], v[1]), _dot(v[0], v[2])
    assert close > far  # a real sentence embedding, not noise


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


# -- models, keys and errors --------------------------------------------------------------------


def test_models_list(client: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"support-answer", "other", "smollm2", "minilm"} <= ids


def test_dev_key_from_loopback(server: BoundedServer) -> None:
    printed = re.search(r"development key \(loopback only\): (\S+)", server.output())
    assert printed, server.output()
    assert (server.store_dir / "dev-key").read_text().strip() == printed[1]
    with client_with(server, printed[1]) as dev:
        assert "support-answer" in {m.id for m in dev.models.list()}


def test_wrong_key_is_401(server: BoundedServer) -> None:
    with (
        client_with(server, "bnd_not-a-real-key") as wrong,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        wrong.chat.completions.create(model="support-answer", messages=CAPITAL)
    assert info.value.status_code == 401
    assert info.value.response.headers.get("x-bounded-trace-id")


def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="support-answr", messages=CAPITAL)
    assert info.value.status_code == 404
    assert "support-answr" in info.value.message


def test_key_scoped_to_another_feature_is_403(server: BoundedServer) -> None:
    key = create_key(server, "growth-bot", "other")
    with client_with(server, key) as scoped:
        with pytest.raises(openai.PermissionDeniedError) as info:
            scoped.chat.completions.create(model="support-answer", messages=CAPITAL, max_tokens=8)
        assert info.value.status_code == 403
        visible = {m.id for m in scoped.models.list()}
        assert "other" in visible and "support-answer" not in visible


def test_revoked_key_is_refused_by_the_running_server(server: BoundedServer) -> None:
    key = create_key(server, "soon-revoked", "support-answer")
    with client_with(server, key) as user:
        assert "support-answer" in {m.id for m in user.models.list()}
        revoked = server.cli("keys", "revoke", "soon-revoked")
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(openai.AuthenticationError) as info:
            user.models.list()
        assert info.value.status_code == 401


def test_server_log_has_no_tracebacks(server: BoundedServer) -> None:
    assert "Traceback" not in server.output()
