"""Token counts match what OpenAI bills, offline, and stay cheap enough to run per request."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from bounded.economics import tokens
from bounded.economics.tokens import (
    CL100K,
    IMAGE_TOKENS,
    O200K,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TokenCounter,
    encoding_for,
)

# OpenAI cookbook, "How to count tokens with tiktoken": the API reported 129 prompt
# tokens for these messages on gpt-3.5-turbo / gpt-4 (cl100k) and 124 on gpt-4o (o200k).
COOKBOOK_MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates "
        "corporate jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the "
        "client deliverable.",
    },
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_delivery_date",
        "description": "Get the delivery date for a customer's order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order ID."}},
            "required": ["order_id"],
        },
    },
}


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    counter = TokenCounter()
    counter.warm()
    return counter


@pytest.mark.parametrize(
    ("text", "o200k", "cl100k"),
    [
        ("hello world", 2, 2),
        ("antidisestablishmentarianism", 6, 6),
        ("2 + 2 = 4", 7, 7),
        ("お誕生日おめでとう", 8, 9),
        ("", 0, 0),
    ],
)
def test_text_counts_match_openai(
    counter: TokenCounter, text: str, o200k: int, cl100k: int
) -> None:
    assert counter.count_text(text, "gpt-4o-mini") == o200k
    assert counter.count_text(text, "gpt-4") == cl100k


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K),
        ("gpt-4o-mini-2024-07-18", O200K),
        ("gpt-4.1-nano", O200K),
        ("o3-mini", O200K),
        ("gpt-5", O200K),
        ("claude-3-5-haiku-20241022", O200K),
        ("models/gemini-2.0-flash", O200K),
        ("smollm2-135m-instruct", O200K),
        ("gpt-4", CL100K),
        ("gpt-4-turbo-2024-04-09", CL100K),
        ("gpt-3.5-turbo", CL100K),
        ("gpt-35-turbo", CL100K),  # Azure's spelling
        ("text-embedding-3-small", CL100K),
    ],
)
def test_encoding_choice(model: str, encoding: str) -> None:
    assert encoding_for(model) == encoding


def test_message_counts_match_the_api(counter: TokenCounter) -> None:
    assert counter.count_messages(COOKBOOK_MESSAGES, "gpt-4-0613") == 129
    assert counter.count_messages(COOKBOOK_MESSAGES, "gpt-3.5-turbo") == 129
    assert counter.count_messages(COOKBOOK_MESSAGES, "gpt-4o") == 124
    assert counter.count_messages(COOKBOOK_MESSAGES, "gpt-4o-mini") == 124


def test_message_count_follows_the_documented_overhead(counter: TokenCounter) -> None:
    model = "gpt-4o"

    def n(text: str) -> int:
        return counter.count_text(text, model)

    expected = REPLY_PRIMING_TOKENS
    for message in COOKBOOK_MESSAGES:
        expected += TOKENS_PER_MESSAGE + n(message["role"]) + n(message["content"])
        if "name" in message:
            expected += n(message["name"]) + 1
    assert counter.count_messages(COOKBOOK_MESSAGES, model) == expected
    assert counter.count_messages([], model) == REPLY_PRIMING_TOKENS


def test_content_parts_count_text_and_a_fixed_cost_per_image(counter: TokenCounter) -> None:
    as_string = [{"role": "user", "content": "What is in this picture? Be brief."}]
    as_parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": " Be brief."},
            ],
        }
    ]
    text_only = counter.count_messages(as_string, "gpt-4o")
    assert counter.count_messages(as_parts, "gpt-4o") == text_only + IMAGE_TOKENS


def test_tool_definitions_and_tool_calls_are_counted(counter: TokenCounter) -> None:
    model = "gpt-4o-mini"
    function_json = json.dumps(WEATHER_TOOL["function"], separators=(",", ":"))
    tools_tokens = counter.count_tools([WEATHER_TOOL], model)
    assert tools_tokens == counter.count_text(function_json, model) > 20

    without = counter.count_messages(COOKBOOK_MESSAGES, model)
    assert counter.count_messages(COOKBOOK_MESSAGES, model, tools=[WEATHER_TOOL]) == (
        without + tools_tokens
    )

    arguments = '{"order_id": "order_12345"}'
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_delivery_date", "arguments": arguments},
            }
        ],
    }
    reply = {"role": "tool", "tool_call_id": "call_1", "content": "2026-07-01"}
    bare = counter.count_messages([{"role": "assistant"}], model)
    assert counter.count_messages([call], model) == (
        bare + counter.count_text("get_delivery_date", model) + counter.count_text(arguments, model)
    )
    assert counter.count_messages([reply], model) == (
        REPLY_PRIMING_TOKENS
        + TOKENS_PER_MESSAGE
        + sum(counter.count_text(s, model) for s in ("tool", "call_1", "2026-07-01"))
    )


def test_a_registered_tokenizer_is_used_for_its_model(counter: TokenCounter) -> None:
    local = TokenCounter()
    local.register("smollm2", lambda text: len(text.split()))
    assert local.count_text("one two three four", "smollm2") == 4
    messages = [{"role": "user", "content": "one two three"}]
    assert local.count_messages(messages, "smollm2") == REPLY_PRIMING_TOKENS + 3 + 1 + 3
    # Other models, and other counters, are unaffected.
    assert local.count_text("one two three four", "gpt-4o") == 4
    assert counter.count_text("hello world", "smollm2") == 2


def test_odd_text_is_counted_not_rejected(counter: TokenCounter) -> None:
    # Special tokens in user text are plain text; lone surrogates are counted as U+FFFD.
    assert counter.count_text("<|endoftext|>", "gpt-4o") == 7
    assert counter.count_text("\ud800abc", "gpt-4o") >= 2
    # No 200k-token cap: a long-context prompt must be counted, not raise.
    assert counter.count_text("word" + " word" * 249_999, "gpt-4.1") == 250_000


def test_encodings_load_offline_once_and_thread_safely(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("token counting tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(tokens, "_encoders", {})  # a fresh process's empty cache
    loads: list[str] = []
    real_load = tokens._load

    def slow_load(encoding: str) -> tokens.Counter:
        loads.append(encoding)
        time.sleep(0.05)  # widen the window in which racing threads could double-load
        return real_load(encoding)

    monkeypatch.setattr(tokens, "_load", slow_load)
    results: list[int] = []
    counter = TokenCounter()
    threads = [
        threading.Thread(target=lambda: results.append(counter.count_text("hello world", "gpt-4o")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [2] * 8
    assert loads == [O200K]


def test_the_public_bpe_openai_api_is_a_working_fallback(
    counter: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> None:
        raise ImportError("layout changed")

    models = ("gpt-4o", "gpt-4")
    odd = "\ud800abc <|endoftext|> お誕生日おめでとう"
    expected = [
        (counter.count_messages(COOKBOOK_MESSAGES, m), counter.count_text(odd, m)) for m in models
    ]
    monkeypatch.setattr(tokens, "_native_bindings", missing)
    monkeypatch.setattr(tokens, "_encoders", {})
    fallback = TokenCounter()
    got = [
        (fallback.count_messages(COOKBOOK_MESSAGES, m), fallback.count_text(odd, m)) for m in models
    ]
    assert got == expected == [(124, expected[0][1]), (129, expected[1][1])]


def test_a_fresh_process_loads_nothing_at_import_and_counts_offline() -> None:
    code = """
import socket, sys
import bounded.economics.prices, bounded.economics.tokens as t
assert "bpe_openai" not in sys.modules and "bpe_openai._bindings" not in sys.modules
def no_network(*a, **k):
    raise AssertionError("token counting tried to use the network")
socket.socket.connect = socket.create_connection = socket.getaddrinfo = no_network
print(t.TokenCounter().count_text("hello world", "gpt-4o"), "bpe_openai" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    # 2 tokens, and the bpe_openai package itself (its slow __init__) was never imported.
    assert out.stdout.split() == ["2", "False"]
