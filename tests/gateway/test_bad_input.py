"""Bad input gets the right status and an OpenAI-style error body, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY

# Nothing listens on port 9: these requests must be refused before any upstream call.
CONFIG: dict[str, Any] = {
    "server": {"max_body_bytes": 2048},
    "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {
        "m1": {"provider": "up", "model": "x"},
        "emb": {"provider": "up", "model": "e", "kind": "embedding"},
    },
    "features": {
        "f": {"owner": "team-a", "route": {"targets": ["m1"]}},
        # Budgets and rate limits make the gateway count tokens before the call.
        "metered": {
            "owner": "team-a",
            "route": {"targets": ["m1"]},
            "budget": {"amount_usd": 5},
            "rate_limit": {"rpm": 1000, "tpm": 1000000},
        },
    },
}
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
GOOD = {"model": "f", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from bounded.gateway.app import Gateway
    from bounded.store.db import Database
    from tests.conftest import make_config, serve_in_thread

    url = f"sqlite:///{tmp_path_factory.mktemp('bad') / 'b.db'}"
    gateway = Gateway(make_config(CONFIG, url), db=Database.open(url), admin_key=ADMIN_KEY)
    with serve_in_thread(gateway.app()) as base, httpx.Client(base_url=base) as http:
        yield http


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return dict(error)


def test_missing_key_is_401(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json=GOOD)
    error = assert_error(resp, 401, "missing_api_key")
    assert error["type"] == "authentication_error"
    assert len(resp.headers["x-bounded-trace-id"]) == 32


@pytest.mark.parametrize("header", ["Bearer wrong-key", "Basic abc", "Bearer"])
def test_wrong_or_malformed_key_is_401(client: httpx.Client, header: str) -> None:
    resp = client.post("/v1/chat/completions", json=GOOD, headers={"authorization": header})
    assert_error(resp, 401)


def test_wrong_key_is_checked_before_the_body(client: httpx.Client) -> None:
    resp = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"authorization": "Bearer nope"}
    )
    assert_error(resp, 401)


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_bad_json_is_400(client: httpx.Client, body: bytes) -> None:
    resp = client.post("/v1/chat/completions", content=body, headers=AUTH)
    error = assert_error(resp, 400, "invalid_json")
    assert error["type"] == "invalid_request_error"


def test_unknown_feature_is_404_naming_it(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json={**GOOD, "model": "nope"}, headers=AUTH)
    error = assert_error(resp, 404, "model_not_found")
    assert "nope" in error["message"]
    assert error["param"] == "model"


def test_unknown_endpoint_and_method(client: httpx.Client) -> None:
    assert_error(client.get("/v1/nothing-here", headers=AUTH), 404, "unknown_endpoint")
    resp = client.get("/v1/chat/completions", headers=AUTH)
    assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == "POST"


def test_body_over_limit_is_413(client: httpx.Client) -> None:
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 5000}]}
    assert_error(client.post("/v1/chat/completions", json=big, headers=AUTH), 413)


def test_chunked_body_over_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    resp = client.post("/v1/chat/completions", content=chunks(), headers=AUTH)
    assert "content-length" not in resp.request.headers
    assert_error(resp, 413)


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": 42}, "model"),
        ({"temperature": 7}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {}}},
            "response_format.json_schema.schema",
        ),
        # Each of these was a 500 before the request schema (issue 9, item 2).
        ({"messages": [{"role": {"a": 1}, "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
        ({"response_format": {"type": []}}, "response_format.type"),
        (
            {"response_format": {"type": "json_schema", "json_schema": "x"}},
            "response_format.json_schema",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
        ),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"stop": [1]}, "stop[0]"),
        ({"user": "u" * 300}, "user"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    client: httpx.Client, patch: dict[str, Any], param: str
) -> None:
    resp = client.post("/v1/chat/completions", json={**GOOD, **patch}, headers=AUTH)
    error = assert_error(resp, 422, "validation_error")
    assert error["param"] == param


@pytest.mark.parametrize("tools", [[1], [None], ["A"], [[]], [{"type": "function"}]])
def test_bad_tools_on_a_metered_feature_are_422(client: httpx.Client, tools: list[Any]) -> None:
    """Token counting for a reservation read the tools before anything checked them."""
    body = {**GOOD, "model": "metered", "tools": tools}
    error = assert_error(client.post("/v1/chat/completions", json=body, headers=AUTH), 422)
    assert error["param"].startswith("tools[0]")


@pytest.mark.parametrize("depth", [65, 256, 900])
def test_deeply_nested_body_is_400(client: httpx.Client, depth: int) -> None:
    """A body nested past what bounded can send upstream is the client's mistake, said
    at once, not an upstream failure later (issue 9, item 1)."""
    raw = b'{"model": "f", "messages": [{"role": "user", "content": "hi"}], "x": '
    raw += b"[" * depth + b"]" * depth + b"}"
    error = assert_error(client.post("/v1/chat/completions", content=raw, headers=AUTH), 400)
    assert error["code"] == "too_deep"


def test_long_session_id_is_400(client: httpx.Client) -> None:
    headers = {**AUTH, "x-bounded-session": "s" * 10_000}
    error = assert_error(client.post("/v1/chat/completions", json=GOOD, headers=headers), 400)
    assert error["param"] == "x-bounded-session"


def test_embeddings_bad_input(client: httpx.Client) -> None:
    resp = client.post("/v1/embeddings", json={"model": "emb", "input": [1, "a"]}, headers=AUTH)
    assert assert_error(resp, 422)["param"] in ("input[0]", "input[1]")
    resp = client.post("/v1/embeddings", json={"model": "emb", "input": []}, headers=AUTH)
    assert assert_error(resp, 422)["param"] == "input"
    resp = client.post("/v1/embeddings", json={"model": "m1", "input": "x"}, headers=AUTH)
    error = assert_error(resp, 404)  # m1 is a chat model, not an embedding model
    assert "/v1/chat/completions" in error["message"]


def test_embedding_model_on_chat_says_where_it_belongs(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json={**GOOD, "model": "emb"}, headers=AUTH)
    error = assert_error(resp, 404)
    assert "embedding model" in error["message"]
    assert "/v1/embeddings" in error["message"]


def test_405_names_the_allowed_methods(client: httpx.Client) -> None:
    resp = client.delete("/v1/chat/completions", headers=AUTH)
    assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == "POST"


def test_models_retrieve(client: httpx.Client) -> None:
    found = client.get("/v1/models/f", headers=AUTH)
    assert found.status_code == 200
    assert found.json()["id"] == "f"
    assert found.json()["bounded"]["kind"] == "feature"
    assert_error(client.get("/v1/models/nope", headers=AUTH), 404)
    assert_error(client.get("/v1/models/f"), 401)


def test_unreachable_upstream_is_a_502_not_a_500(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json=GOOD, headers=AUTH)
    error = assert_error(resp, 502)
    assert error["code"] == "unavailable"
    assert resp.headers["x-bounded-attempts"] == "2"  # default: two tries per target


def test_health_endpoints(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert "m1" in ready["breakers"]


NUL_URLS = [
    "/v1/traces?feature=a%00b",
    "/v1/traces/ab%00cd",
    "/v1/spend?period=day&group=feature&feature=f%00",
    "/v1/prompts/f%00",
    "/v1/releases/f%00/pairs",
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_nul_in_the_url_is_400_on_either_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    # PostgreSQL refuses NUL in any query: each of these was a 500 there, and SQLite
    # answered them as lookups. Both now say what is wrong with the URL.
    from bounded.gateway.app import Gateway
    from bounded.store.db import Database
    from tests.conftest import make_config, serve_in_thread

    url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'b.db'}"
    )
    db = Database.open(url)
    gateway = Gateway(make_config(CONFIG, url), db=db, admin_key=ADMIN_KEY)
    try:
        with serve_in_thread(gateway.app()) as base, httpx.Client(base_url=base) as http:
            for path in NUL_URLS:
                error = assert_error(http.get(path, headers=AUTH), 400, "invalid_request")
                assert "NUL" in error["message"], path
            assert http.get("/v1/traces?feature=ab", headers=AUTH).status_code == 200
    finally:
        db.close()
