"""``GET /openapi.json`` describes every endpoint, from the schema requests are checked with."""

from __future__ import annotations

import re
from typing import Any

import httpx

from bounded.gateway.api_schema import ChatCompletionRequest
from tests.conftest import ADMIN_KEY

CONFIG: dict[str, Any] = {
    "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {
        "m1": {"provider": "up", "model": "x"},
        "emb": {"provider": "up", "model": "e", "kind": "embedding"},
    },
    "features": {"support": {"owner": "team-a", "route": {"targets": ["m1"]}}},
}


def test_the_document_lists_every_endpoint_the_gateway_serves(gateway_factory: Any) -> None:
    with gateway_factory(CONFIG) as (url, gateway):
        resp = httpx.get(f"{url}/openapi.json")  # public: clients generate from it
        served = {
            (re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path), method.lower())
            for route in gateway.routes()
            for method in route.methods or ()
            if method != "HEAD"
        }
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.1")
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert described == served


def test_request_bodies_are_the_validation_schema(gateway_factory: Any) -> None:
    with gateway_factory(CONFIG) as (url, _):
        doc = httpx.get(f"{url}/openapi.json").json()
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    published = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    expected = ChatCompletionRequest.model_json_schema()
    assert published["required"] == expected["required"]
    assert set(published["properties"]) == set(expected["properties"])
    # The gateway's own names are offered as examples, so generated calls can succeed.
    assert {"support", "m1"} <= set(published["properties"]["model"]["examples"])
    assert "bearer" in doc["components"]["securitySchemes"]
    for status in ("400", "401", "422", "429", "502"):
        assert status in chat["responses"]


def test_an_upstream_failure_is_logged_once_with_its_trace(
    gateway_factory: Any, caplog: Any
) -> None:
    body = {"model": "support", "messages": [{"role": "user", "content": "hi"}]}
    with caplog.at_level("INFO", "bounded.gateway"), gateway_factory(CONFIG) as (url, _):
        resp = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        )
    assert resp.status_code == 502
    trace = resp.headers["x-bounded-trace-id"]
    lines = [r for r in caplog.records if trace in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelname == "WARNING"
    assert "502" in lines[0].getMessage()
