"""Per-attempt timeouts and the whole-request deadline, as a client times them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.standins.faulty_upstream import FaultyUpstream, chat, hang, ok, routed_config


@pytest.fixture(scope="module")
def standin() -> Iterator[FaultyUpstream]:
    with FaultyUpstream().running() as up:
        yield up


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    standin.forget().always("primary", hang(10))
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
    assert 0.3 <= elapsed < 1.0


def test_a_deployment_timeout_overrides_the_routes(upstream, gateway_factory):
    route = {"targets": ["primary", "backup"], "retry": {"attempts": 1}, "timeout_s": 5}
    config = routed_config(upstream.base_url, route, model_extra={"primary": {"timeout_s": 0.3}})
    with gateway_factory(config) as (url, _):
        started = time.monotonic()
        r = chat(url)
        elapsed = time.monotonic() - started
    assert r.headers["x-bounded-route"] == "backup"
    assert elapsed < 1.0


def test_the_deadline_bounds_the_whole_request_not_attempts_times_timeout(
    upstream, gateway_factory
):
    # Unbounded, this would take 3 attempts x 0.6 s = 1.8 s. (Before the fix, the attempt the
    # deadline cut short also surfaced as a plain "timeout" naming no deadline.)
    route = {
        "targets": ["primary"],
        "timeout_s": 0.6,
        "deadline_s": 1.0,
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
        "deadline of 1s exceeded after 2 attempt(s) (primary: timeout; primary: timeout)"
    )
    assert r.headers["x-bounded-attempts"] == "2"
    assert 0.95 <= elapsed < 1.5


def test_an_attempt_timeout_names_the_deployment_and_the_limit(upstream, gateway_factory):
    route = {"targets": ["primary"], "retry": {"attempts": 1}, "timeout_s": 0.3}
    with gateway_factory(routed_config(upstream.base_url, route)) as (url, _):
        r = chat(url)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "timeout"
    assert r.json()["error"]["message"] == "primary: no reply within 0.3s"
