"""Through the gateway with the official openai SDK: the production prompt version is
rendered before the client's messages, its number is on the response and the ledger row."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from bounded.gateway.app import Gateway
from bounded.gateway.call import Call, Next, Reply
from bounded.gateway.chat import chat_pipeline, endpoint
from bounded.gateway.stages.prompt import RenderPrompt
from bounded.prompts import PromptStore, PromptTemplate
from bounded.store.db import Database
from tests.conftest import ADMIN_KEY, make_config, serve_in_thread
from tests.standins.faulty_upstream import FaultyUpstream

SYSTEM = "You are the support assistant."
HELLO: list[Any] = [{"role": "user", "content": "hello"}]


def config(base_url: str) -> dict[str, Any]:
    return {
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "x"}},
        "models": {"m1": {"provider": "up", "model": "stub-model"}},
        "features": {
            "support": {"owner": "ana", "route": {"targets": ["m1"]}, "prompt": {"system": SYSTEM}},
            "plain": {"owner": "ana", "route": {"targets": ["m1"]}},
        },
    }


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    return standin.forget()


@contextlib.contextmanager
def gateway(
    url: str, base_url: str, prepare: Callable[[Gateway], None] = lambda gw: None
) -> Iterator[tuple[OpenAI, Gateway]]:
    db = Database.open(url)
    gw = Gateway(make_config(config(base_url), url), db=db, admin_key=ADMIN_KEY)
    prepare(gw)
    try:
        with serve_in_thread(gw.app()) as served:
            yield OpenAI(base_url=f"{served}/v1", api_key=ADMIN_KEY, max_retries=0), gw
    finally:
        db.close()


def ledger_version(db: Database, trace_id: str) -> Any:
    rows = db.execute("SELECT prompt_version FROM ledger WHERE trace_id = ?", (trace_id,))
    assert len(rows) == 1
    return rows[0]["prompt_version"]


def sent(upstream: FaultyUpstream) -> dict[str, Any]:
    return upstream.received[-1].body


def test_the_config_prompt_is_version_1(upstream: FaultyUpstream, store_url: str) -> None:
    with gateway(store_url, upstream.base_url) as (client, gw):
        raw = client.chat.completions.with_raw_response.create(model="support", messages=HELLO)
        assert raw.headers["x-bounded-prompt-version"] == "1"
        assert sent(upstream)["messages"] == [{"role": "system", "content": SYSTEM}, *HELLO]
        assert ledger_version(gw.db, raw.headers["x-bounded-trace-id"]) == "1"
        # A feature without a prompt, and a model called directly: unchanged, no version.
        for model in ("plain", "m1"):
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=HELLO, extra_body={"bounded": {"vars": {"x": 1}}}
            )
            assert "x-bounded-prompt-version" not in raw.headers
            assert sent(upstream)["messages"] == HELLO
            assert "bounded" not in sent(upstream)  # bounded's fields never go upstream
            assert ledger_version(gw.db, raw.headers["x-bounded-trace-id"]) is None


def test_a_labelled_version_with_variables_is_served(
    upstream: FaultyUpstream, store_url: str
) -> None:
    with gateway(store_url, upstream.base_url) as (client, gw):
        store = PromptStore(gw.db)
        template = PromptTemplate.parse(
            {
                "system": "Help {{ customer }} ({{ plan }} plan).",
                "params": {"temperature": 0.1, "max_tokens": 50},
                "variables": {"plan": "free"},
            }
        )
        v2 = store.push("support", template, author="ana").version
        store.label("support", v2.version, "production", actor="ana")
        gw.prompts.invalidate()  # the CLI in another process: the gateway's check sees it
        raw = client.chat.completions.with_raw_response.create(
            model="support",
            messages=HELLO,
            temperature=0.7,  # the request's own value wins over the version's default
            extra_body={"bounded": {"vars": {"customer": "Ana"}}},
        )
        assert raw.headers["x-bounded-prompt-version"] == "2"
        body = sent(upstream)
        assert body["messages"][0] == {"role": "system", "content": "Help Ana (free plan)."}
        assert (body["temperature"], body["max_tokens"]) == (0.7, 50)
        assert "bounded" not in body
        assert ledger_version(gw.db, raw.headers["x-bounded-trace-id"]) == "2"

        # Streams too: the header, and the row.
        with client.chat.completions.with_streaming_response.create(
            model="support",
            messages=HELLO,
            stream=True,
            extra_body={"bounded": {"vars": {"customer": "Bo", "plan": "pro"}}},
        ) as response:
            assert response.headers["x-bounded-prompt-version"] == "2"
            text = "".join(response.iter_lines())
            trace = response.headers["x-bounded-trace-id"]
        assert "[DONE]" in text
        assert sent(upstream)["messages"][0]["content"] == "Help Bo (pro plan)."
        assert ledger_version(gw.db, trace) == "2"

        # A missing variable: a clear 400 naming it, and nothing sent upstream.
        before = upstream.count("stub-model")
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="support", messages=HELLO)
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["param"] == "bounded.vars.customer"
        assert "'customer'" in error["message"]
        assert upstream.count("stub-model") == before
        with pytest.raises(openai.UnprocessableEntityError):
            client.chat.completions.create(
                model="support", messages=HELLO, extra_body={"bounded": {"vars": ["customer"]}}
            )


def test_replicas_follow_the_store_not_their_memory(
    upstream: FaultyUpstream, postgres_url: str
) -> None:
    """Two gateways on one PostgreSQL: a label moved in the store is served by a replica
    at its next check; until then, by design, its cached version."""
    with (
        gateway(postgres_url, upstream.base_url) as (fresh, fresh_gw),
        gateway(postgres_url, upstream.base_url) as (cached, cached_gw),
    ):
        fresh_gw.prompts.check_every_s = 0.0
        cached_gw.prompts.check_every_s = 3600.0
        for client in (fresh, cached):
            raw = client.chat.completions.with_raw_response.create(model="support", messages=HELLO)
            assert raw.headers["x-bounded-prompt-version"] == "1"
        store = PromptStore(Database.open(postgres_url))
        v2 = store.push("support", PromptTemplate.parse({"system": "New."}), author="ana")
        store.label("support", v2.version.version, "production", actor="ana")
        raw = fresh.chat.completions.with_raw_response.create(model="support", messages=HELLO)
        assert raw.headers["x-bounded-prompt-version"] == "2"
        assert sent(upstream)["messages"][0]["content"] == "New."
        raw = cached.chat.completions.with_raw_response.create(model="support", messages=HELLO)
        assert raw.headers["x-bounded-prompt-version"] == "1"
        cached_gw.prompts.check_every_s = 0.0
        raw = cached.chat.completions.with_raw_response.create(model="support", messages=HELLO)
        assert raw.headers["x-bounded-prompt-version"] == "2"
        store.db.close()


def test_a_first_version_labelled_elsewhere_reaches_a_feature_that_had_none(
    upstream: FaultyUpstream, postgres_url: str
) -> None:
    """A feature without a prompt passes the prompt stage without awaiting its cache (the
    check runs in the background); a version labelled by another replica still reaches it
    at that replica's next check."""
    with gateway(postgres_url, upstream.base_url) as (client, gw):
        raw = client.chat.completions.with_raw_response.create(model="plain", messages=HELLO)
        assert "x-bounded-prompt-version" not in raw.headers
        assert gw.prompts.known_without("plain")  # now answered from memory
        store = PromptStore(Database.open(postgres_url))
        v1 = store.push("plain", PromptTemplate.parse({"system": "Be plain."}), author="ana")
        store.label("plain", v1.version.version, "production", actor="ana")
        gw.prompts.check_every_s = 0.0
        served = None
        deadline = time.monotonic() + 5
        while served is None and time.monotonic() < deadline:
            raw = client.chat.completions.with_raw_response.create(model="plain", messages=HELLO)
            served = raw.headers.get("x-bounded-prompt-version")
        assert served == str(v1.version.version)
        assert sent(upstream)["messages"][0] == {"role": "system", "content": "Be plain."}
        store.db.close()


class Pin:
    """What a release stage does for a canary: pin the version before the prompt stage
    (here for requests that ask, by a header, so one gateway serves both arms)."""

    name = "pin"

    async def __call__(self, call: Call, next: Next) -> Reply:
        pinned = call.request.headers.get("x-test-pin")
        if pinned:
            call.prompt_version = int(pinned)
        return await next(call)


def with_pin(gw: Gateway) -> None:
    base = chat_pipeline(gw.auth, gw.meter, lambda: None, lambda: gw.prompts)
    stages = list(base.stages)
    stages.insert(next(i for i, s in enumerate(stages) if isinstance(s, RenderPrompt)), Pin())
    gw.chat_completions = endpoint(type(base)(stages), lambda: gw.runtime, "chat")


def test_a_version_pinned_on_the_call_is_rendered(upstream: FaultyUpstream, store_url: str) -> None:
    with gateway(store_url, upstream.base_url, with_pin) as (client, gw):
        PromptStore(gw.db).push("support", PromptTemplate.parse({"system": "V2"}), author="a")
        raw = client.chat.completions.with_raw_response.create(
            model="support", messages=HELLO, extra_headers={"x-test-pin": "2"}
        )
        assert raw.headers["x-bounded-prompt-version"] == "2"
        assert sent(upstream)["messages"][0]["content"] == "V2"
        assert ledger_version(gw.db, raw.headers["x-bounded-trace-id"]) == "2"
        # production is still version 1 for everyone else
        raw = client.chat.completions.with_raw_response.create(model="support", messages=HELLO)
        assert raw.headers["x-bounded-prompt-version"] == "1"
        assert sent(upstream)["messages"][0]["content"] == SYSTEM
        # a pinned version that does not exist: 404 naming what does
        with pytest.raises(openai.NotFoundError, match="versions 1 to 2"):
            client.chat.completions.create(
                model="support", messages=HELLO, extra_headers={"x-test-pin": "9"}
            )
