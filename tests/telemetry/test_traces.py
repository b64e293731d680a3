"""Each request is a trace: a root span by the GenAI conventions, a span per stage, one per
upstream attempt; read back over GET /v1/traces, text only with traces:read_text.

A real gateway (uvicorn, SQLite) in front of the stand-in upstream, called with the
official OpenAI SDK.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from bounded.store.keys import KeyRepository
from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import FaultyUpstream, ok, status, stream

AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
EMAIL = "zelda.quartermaine@example.org"


def config(base_url: str, **extra: Any) -> dict[str, Any]:
    feature = {"owner": "support", "team": "care", "route": {"targets": ["flaky", "m"]}}
    return {
        "server": {"dev_key": False, "reload": False},
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "sk-standin"}},
        "models": {
            "m": {"provider": "up", "model": "m", "price": {"input": "1", "output": "2"}},
            "flaky": {"provider": "up", "model": "flaky"},
        },
        "features": {
            "support": feature,
            "secret-stuff": {**feature, "risk_tier": "high"},
        },
        **extra,
    }


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget()
    standin.always("m", ok("Refunds take five days."))
    standin.always("flaky", status(503))
    return standin


_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """The SDK clients a test made are closed after it (an unclosed one leaks a socket)."""
    yield
    while _clients:
        _clients.pop().close()


def _client(url: str, key: str = ADMIN_KEY) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    _clients.append(client)
    return client


def _trace(url: str, trace_id: str, key: str = ADMIN_KEY, **params: str) -> httpx.Response:
    return httpx.get(
        f"{url}/v1/traces/{trace_id}", headers={"authorization": f"Bearer {key}"}, params=params
    )


def _stream_trace(url: str, gateway: Any, trace_id: str, **params: str) -> Any:
    """A stream's trace is queued when its last byte has been sent, which can be just after
    the client read ``[DONE]``: flush and ask again until it is there (5 s at most)."""
    deadline = time.monotonic() + 5
    while True:
        assert gateway.telemetry.flush()
        got = _trace(url, trace_id, **params)
        if got.status_code != 404 or time.monotonic() > deadline:
            assert got.status_code == 200, got.text
            return got.json()
        time.sleep(0.02)


def test_a_request_is_a_trace_with_genai_attributes(
    gateway_factory: Any, upstream: FaultyUpstream
) -> None:
    with gateway_factory(config(upstream.base_url)) as (url, gateway):
        raw = _client(url).chat.completions.with_raw_response.create(
            model="support",
            messages=[{"role": "user", "content": "how long do refunds take?"}],
            max_tokens=50,
            temperature=0.2,
        )
        trace_id = raw.headers["x-bounded-trace-id"]
        assert gateway.telemetry.flush()
        got = _trace(url, trace_id)
    assert got.status_code == 200, got.text
    body = got.json()
    spans = {s["name"]: s for s in body["spans"]}
    root = spans["chat support"]
    assert root["parent_span_id"] is None and root["kind"] == "server"
    attrs = root["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "support"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.response.model"] == "m"
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["bounded.feature"] == "support" and attrs["bounded.team"] == "care"
    assert attrs["bounded.arm"] == "stable" and attrs["bounded.cost_usd"] > 0
    assert "bounded.prompt.version" in attrs
    # A span per stage, nested in the order of the path; the route span has the attempts.
    for stage in ("auth", "body", "resolve", "settle", "admit", "route"):
        assert spans[stage]["attributes"]["bounded.stage"] == stage
    assert spans["auth"]["parent_span_id"] == root["span_id"]
    # Every stage nests in the one before it, those with nothing to do for this feature
    # (they hand the call on without awaiting) included, each ending no sooner than it.
    path = gateway.chat_pipeline.names
    assert path[:3] == ["auth", "body", "resolve"] and path[-1] == "route"
    for outer, inner in itertools.pairwise(path):
        assert spans[inner]["parent_span_id"] == spans[outer]["span_id"], (outer, inner)
        assert spans[inner]["end_time_unix_nano"] <= spans[outer]["end_time_unix_nano"]
    attempts = [s for s in body["spans"] if s["kind"] == "client"]
    assert [a["attributes"]["bounded.deployment"] for a in attempts] == ["flaky", "flaky", "m"]
    assert all(a["parent_span_id"] == spans["route"]["span_id"] for a in attempts)
    assert attempts[0]["status"] == "error"
    assert attempts[0]["attributes"]["error.type"] == "unavailable"
    assert attempts[-1]["name"] == "chat m" and attempts[-1]["status"] == "ok"
    assert attempts[-1]["attributes"]["server.address"] == "127.0.0.1"
    # Children inside their parents.
    by_id = {s["span_id"]: s for s in body["spans"]}
    for span in body["spans"]:
        parent = by_id.get(span["parent_span_id"] or "")
        if parent is not None:
            assert parent["start_time_unix_nano"] <= span["start_time_unix_nano"]
            assert span["end_time_unix_nano"] <= parent["end_time_unix_nano"]
    (request,) = body["requests"]
    assert request["feature"] == "support" and request["status"] == "ok"
    assert request["deployment"] == "m" and request["http_status"] == 200
    assert "text" not in body


def test_a_stream_is_traced_like_json(gateway_factory: Any, upstream: FaultyUpstream) -> None:
    upstream.always("m", stream(["Refunds", " take", " five", " days."]))
    with gateway_factory(config(upstream.base_url)) as (url, gateway):
        with _client(url).chat.completions.with_streaming_response.create(
            model="support", messages=[{"role": "user", "content": "refunds?"}], stream=True
        ) as response:
            trace_id = response.headers["x-bounded-trace-id"]
            text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
        assert text == "Refunds take five days."
        body = _stream_trace(url, gateway, trace_id, include="text")
    root = next(s for s in body["spans"] if s["parent_span_id"] is None)
    assert root["attributes"]["bounded.stream"] is True
    assert root["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert root["attributes"]["gen_ai.usage.output_tokens"] > 0
    # The root covers the whole stream, which ends after the route stage handed it back.
    route = next(s for s in body["spans"] if s["name"] == "route")
    assert root["end_time_unix_nano"] >= route["end_time_unix_nano"]
    (stored,) = body["text"]
    assert stored["completion"] == "Refunds take five days."
    assert "user: refunds?" in stored["prompt"]


def test_failures_are_error_traces_and_search_finds_them(
    gateway_factory: Any, upstream: FaultyUpstream
) -> None:
    upstream.always("m", status(500))
    with gateway_factory(config(upstream.base_url)) as (url, gateway):
        client = _client(url)
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(
                model="support", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model=EMAIL, messages=[{"role": "user", "content": "hi"}]
            )
        assert gateway.telemetry.flush()
        errors = httpx.get(f"{url}/v1/traces", headers=AUTH, params={"status": "error"}).json()
        support = httpx.get(
            f"{url}/v1/traces", headers=AUTH, params={"feature": "support", "since": "0"}
        ).json()
        late = httpx.get(f"{url}/v1/traces", headers=AUTH, params={"since": "9999999999"}).json()
        bad = httpx.get(f"{url}/v1/traces", headers=AUTH, params={"since": "yesterday"})
    statuses = sorted(r["http_status"] for r in errors["data"])
    assert statuses == [404, 502] or statuses == [404, 503], statuses
    assert [r["feature"] for r in support["data"]] == ["support"]
    assert support["data"][0]["error_class"] is not None
    assert late["data"] == []
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "since"
    # The unknown model name a client typed is not stored anywhere in the trace.
    unknown = next(r for r in errors["data"] if r["http_status"] == 404)
    assert unknown["model"] is None and unknown["name"] == "chat"


def test_scopes_guard_traces_and_their_text(
    gateway_factory: Any, upstream: FaultyUpstream, keys: KeyRepository
) -> None:
    _, plain = keys.create("app")
    _, reader = keys.create("observer", scopes=("traces:read",))
    _, text_reader = keys.create("auditor", scopes=("traces:read", "traces:read_text"))
    _, other = keys.create("other-team", features=["secret-stuff"], scopes=("traces:read",))
    with gateway_factory(config(upstream.base_url)) as (url, gateway):
        raw = _client(url, plain).chat.completions.with_raw_response.create(
            model="support", messages=[{"role": "user", "content": f"mail me at {EMAIL}"}]
        )
        trace_id = raw.headers["x-bounded-trace-id"]
        assert gateway.telemetry.flush()
        denied = _trace(url, trace_id, plain)
        meta = _trace(url, trace_id, reader)
        no_text = _trace(url, trace_id, reader, include="text")
        text = _trace(url, trace_id, text_reader, include="text")
        hidden = _trace(url, trace_id, other)
        listed = httpx.get(f"{url}/v1/traces", headers={"authorization": f"Bearer {other}"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "scope_required"
    assert meta.status_code == 200 and "text" not in meta.json()
    assert no_text.status_code == 403
    assert text.status_code == 200
    (stored,) = text.json()["text"]
    # Stored after redaction: the address is a placeholder, never the value.
    assert EMAIL not in stored["prompt"] and "<EMAIL_1>" in stored["prompt"]
    assert stored["completion"] == "Refunds take five days."
    assert hidden.status_code == 404  # a key for other features does not see this one
    assert listed.json()["data"] == []


def test_high_risk_features_store_no_text_and_sampling_skips_traces(
    gateway_factory: Any, upstream: FaultyUpstream
) -> None:
    data = config(upstream.base_url, telemetry={"sample_ratio": 0.0})
    with gateway_factory(config(upstream.base_url)) as (url, gateway):
        raw = _client(url).chat.completions.with_raw_response.create(
            model="secret-stuff", messages=[{"role": "user", "content": "hello"}]
        )
        assert gateway.telemetry.flush()
        body = _trace(url, raw.headers["x-bounded-trace-id"], include="text").json()
    assert body["requests"][0]["feature"] == "secret-stuff"
    assert body["text"] == []
    with gateway_factory(data) as (url, gateway):
        raw = _client(url).chat.completions.with_raw_response.create(
            model="support", messages=[{"role": "user", "content": "hello"}]
        )
        assert gateway.telemetry.flush()
        missing = _trace(url, raw.headers["x-bounded-trace-id"])
    assert raw.status_code == 200
    assert missing.status_code == 404


def test_a_repair_is_another_pass_under_the_validate_span(
    gateway_factory: Any, upstream: FaultyUpstream
) -> None:
    schema = {
        "type": "object",
        "properties": {"days": {"type": "integer"}},
        "required": ["days"],
    }
    data = config(upstream.base_url)
    data["features"]["support"] = {
        **data["features"]["support"],
        "route": {"targets": ["m"]},
        "output": {"schema": schema, "on_fail": "repair"},
    }
    upstream.script("m", ok("five days"), ok('{"days": 5}'))
    with gateway_factory(data) as (url, gateway):
        raw = _client(url).chat.completions.with_raw_response.create(
            model="support", messages=[{"role": "user", "content": "refund days?"}]
        )
        assert raw.headers["x-bounded-validation"] == "repaired"
        assert gateway.telemetry.flush()
        body = _trace(url, raw.headers["x-bounded-trace-id"]).json()
    spans = body["spans"]
    (validate,) = [s for s in spans if s["name"] == "validate"]
    passes = [s for s in spans if s["name"] == "settle"]
    assert len(passes) == 2
    assert all(p["parent_span_id"] == validate["span_id"] for p in passes)
    assert len([s for s in spans if s["kind"] == "client"]) == 2
    root = next(s for s in spans if s["parent_span_id"] is None)
    assert root["attributes"]["bounded.validation"] == "repaired"
    assert root["attributes"]["bounded.passes"] == 2


def test_an_answer_that_never_validates_is_an_error_trace(
    gateway_factory: Any, upstream: FaultyUpstream
) -> None:
    # Each pass is a fork with its own ledger row; the trace must still say what the
    # client got (422), not the root call's untouched 200.
    data = config(upstream.base_url)
    data["features"]["support"] = {
        **data["features"]["support"],
        "route": {"targets": ["m"]},
        "output": {"schema": {"type": "object", "required": ["days"]}, "max_repairs": 1},
    }
    upstream.always("m", ok("five days"))
    with gateway_factory(data) as (url, gateway):
        with pytest.raises(openai.UnprocessableEntityError) as failed:
            _client(url).chat.completions.create(
                model="support", messages=[{"role": "user", "content": "refund days?"}]
            )
        trace_id = failed.value.response.headers["x-bounded-trace-id"]
        assert gateway.telemetry.flush()
        found = httpx.get(f"{url}/v1/traces", headers=AUTH, params={"status": "error"}).json()
    (row,) = [r for r in found["data"] if r["trace_id"] == trace_id]
    assert row["http_status"] == 422
    assert row["error_class"] == "output_invalid"
