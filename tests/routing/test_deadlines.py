"""Per-attempt timeouts and the whole-request deadline, as a client times them.

A busy machine can only make a request slower, so lower bounds are exact (a timer never
fires early) while upper bounds sit well below what the wrong behaviour would take (the
10 s hang, attempts x timeout), never just above the right answer.
"""

from __future__ import annotations

import time

import pytest

from tests.standins.faulty_upstream import FaultyUpstream, chat, hang, ok, routed_config

HANG_S = 10  # how long the primary keeps a request waiting


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget().always("primary", hang(HANG_S))
    standin.always("backup", ok("from backup"))
    return standin


def test_an_attempt_that_outlives_its_timeout_falls_back_promptly(upstream, gateway_factory):
    route = {"targets": ["primary", "backup"], "retry": {"attempts": 1}, "timeout_s": 0.3}
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        started = time.monotonic()
        r = chat(url)
        elapsed = time.monotonic() - started
    assert r.status_code == 200
    assert r.headers["x-bounded-route"] == "backup"
    assert 0.3 <= elapsed < HANG_S / 2  # the attempt was given its 0.3 s, not the hang


def test_a_deployment_timeout_overrides_the_routes(upstream, gateway_factory):
    route = {"targets": ["primary", "backup"], "retry": {"attempts": 1}, "timeout_s": 5}
    config = routed_config(upstream.base_url, route, model_extra={"primary": {"timeout_s": 0.3}})
    with gateway_factory(config) as (url, _):
        started = time.monotonic()
        r = chat(url)
        elapsed = time.monotonic() - started
    assert r.headers["x-bounded-route"] == "backup"
    assert elapsed < 4.0  # the deployment's 0.3 s applied, not the route's 5 s


def test_the_deadline_bounds_the_whole_request_not_attempts_times_timeout(
    upstream, gateway_factory
):
    # Unbounded, this would take 3 attempts x 2 s = 6 s, and 4 s had the deadline not cut
    # the second attempt short. (Before the fix, that attempt also surfaced as a plain
    # "timeout" naming no deadline.)
    route = {
        "targets": ["primary"],
        "timeout_s": 2.0,
        "deadline_s": 2.5,
        "retry": {"attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.01},
    }
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        started = time.monotonic()
        r = chat(url)
        elapsed = time.monotonic() - started
    assert r.status_code == 504
    error = r.json()["error"]
    assert error["type"] == "timeout_error"
    assert error["code"] == "deadline_exceeded"
    assert error["message"] == (
        "deadline of 2.5s exceeded after 2 attempt(s) (primary: timeout; primary: timeout)"
    )
    assert r.headers["x-bounded-attempts"] == "2"
    assert 2.45 <= elapsed < 3.9


def test_an_attempt_timeout_names_the_deployment_and_the_limit(upstream, gateway_factory):
    route = {"targets": ["primary"], "retry": {"attempts": 1}, "timeout_s": 0.3}
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        r = chat(url)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "timeout"
    assert r.json()["error"]["message"] == "primary: no reply within 0.3s"
