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
    "models": {"m1": {"provider": "up", "model": "x"}},
    "features": {"f": {"owner": "team-a", "route": {"targets": ["m1"]}}},
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
    assert_error(client.get("/v1/chat/completions", headers=AUTH), 405, "method_not_allowed")


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
        ({"response_format": {"type": "yaml"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {}}},
            "response_format.json_schema",
        ),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    client: httpx.Client, patch: dict[str, Any], param: str
) -> None:
    resp = client.post("/v1/chat/completions", json={**GOOD, **patch}, headers=AUTH)
    error = assert_error(resp, 422, "validation_error")
    assert error["param"] == param


def test_embeddings_bad_input(client: httpx.Client) -> None:
    resp = client.post("/v1/embeddings", json={"model": "m1", "input": [1, 2]}, headers=AUTH)
    assert_error(resp, 422)
    resp = client.post("/v1/embeddings", json={"model": "m1", "input": "x"}, headers=AUTH)
    assert_error(resp, 404)  # m1 is a chat model, not an embedding model


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
