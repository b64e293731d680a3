"""Fallbacks: which failures move a request to the next target, and which reach the client."""

from __future__ import annotations

import httpx
import pytest

from tests.standins.faulty_upstream import (
    FaultyUpstream,
    bad_request,
    chat,
    content_filter,
    context_too_long,
    hang,
    malformed_json,
    ok,
    rate_limited,
    reset,
    routed_config,
    status,
)

ONE_TRY = {"attempts": 1}
ROUTE = {"targets": ["primary", "backup"], "retry": ONE_TRY, "timeout_s": 0.5}


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget().always("backup", ok("from backup"))
    return standin


FAULTS = {
    "rate-limit": rate_limited(),
    "timeout": hang(5),
    "500": status(500),
    "503": status(503),
    "connection-reset": reset(),
    "malformed-json": malformed_json(),
    "context-too-long": context_too_long(),
    "content-refused": content_filter(),
}
# One gateway serves every case; a breaker that cannot reach min_calls keeps them independent.
NO_BREAKER = {"window": 20, "min_calls": 20}


def test_each_failure_class_falls_back_to_the_next_target(upstream, gateway_factory, subtests):
    with gateway_factory(routed_config(upstream.base_url, ROUTE, breaker=NO_BREAKER)) as (url, _):
        for name, fault in FAULTS.items():
            with subtests.test(fault=name):
                upstream.forget().always("backup", ok("from backup"))
                upstream.script("primary", fault)
                r = chat(url)
                assert r.status_code == 200
                assert r.json()["choices"][0]["message"]["content"] == "from backup"
                assert r.headers["x-bounded-route"] == "backup"
                assert r.headers["x-bounded-attempts"] == "2"
                assert (upstream.count("primary"), upstream.count("backup")) == (1, 1)


def test_the_stand_in_reset_is_a_real_connection_reset(upstream):
    """Guards the fault above: a reset must reach the client as a transport error."""
    upstream.script("primary", reset())
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{upstream.base_url}/chat/completions", json={"model": "primary"}, timeout=5)


def test_a_prompt_too_long_is_not_retried_on_the_same_model(upstream, gateway_factory):
    upstream.always("primary", context_too_long())
    route = {**ROUTE, "retry": {"attempts": 3, "backoff_base_s": 0.01}}
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        r = chat(url)
    assert r.headers["x-bounded-route"] == "backup"
    assert r.headers["x-bounded-attempts"] == "2"
    assert upstream.count("primary") == 1


def test_a_bad_request_is_not_sent_to_the_fallback(upstream, gateway_factory):
    upstream.always("primary", bad_request())
    with gateway_factory(routed_config(upstream.base_url, ROUTE)) as (url, _):
        r = chat(url)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "bad_request"
    assert "temperature" in error["message"]
    assert r.headers["x-bounded-attempts"] == "1"
    assert (upstream.count("primary"), upstream.count("backup")) == (1, 0)


def test_fallback_on_limits_which_failures_fall_back(upstream, gateway_factory):
    route = {**ROUTE, "fallback_on": ["timeout"]}
    upstream.script("primary", status(503), hang(5))
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        unavailable = chat(url)
        assert upstream.count("backup") == 0
        timed_out = chat(url)
    assert unavailable.status_code == 502
    assert unavailable.json()["error"]["type"] == "upstream_error"
    assert unavailable.json()["error"]["code"] == "unavailable"
    assert timed_out.status_code == 200
    assert timed_out.headers["x-bounded-route"] == "backup"
    assert (upstream.count("primary"), upstream.count("backup")) == (2, 1)


def test_when_every_target_fails_the_error_lists_what_was_tried(upstream, gateway_factory):
    upstream.always("primary", status(503))
    upstream.always("backup", status(500))
    with gateway_factory(routed_config(upstream.base_url, ROUTE)) as (url, _):
        r = chat(url)
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert "upstream 500" in message  # the last error decides the answer
    assert "primary: unavailable" in message and "backup: unavailable" in message
    assert r.headers["x-bounded-attempts"] == "2"
