"""Trace and span ids begin with the time, so the indexes holding them grow at their end
(bench/trace_writer.py --grow measures what that saves); the rest is random."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from bounded.telemetry.spans import new_span_id, new_trace_id
from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import FaultyUpstream, ok

TICK_NS = 2**30  # a span id's clock


def test_trace_ids_are_the_time_in_seconds_then_random() -> None:
    before = int(time.time())
    ids = [new_trace_id() for _ in range(20_000)]
    after = int(time.time())
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert all(before <= int(i[:8], 16) <= after for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i[8:] for i in ids}) == len(ids)  # the random part alone is unique


def test_span_ids_share_their_clock_prefix_and_stay_unique() -> None:
    t = 1_796_321_280_908_409_953
    ids = [new_span_id(t) for _ in range(50_000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) and i != "0" * 16 for i in ids)
    assert {i[:4] for i in ids} == {f"{(t >> 30) & 0xFFFF:04x}"}
    assert len(set(ids)) == len(ids)
    # The next tick has the next prefix; the clock wraps every 2**46 ns (19.5 hours).
    assert new_span_id(t + TICK_NS)[:4] == f"{((t >> 30) + 1) & 0xFFFF:04x}"
    assert new_span_id(t + 2**46)[:4] == ids[0][:4]


def test_a_request_s_ids_begin_with_its_time(gateway_factory: Any, standin: FaultyUpstream) -> None:
    standin.forget()
    standin.always("m", ok("hello"))
    config = {
        "server": {"dev_key": False, "reload": False},
        "providers": {"up": {"kind": "openai", "base_url": standin.base_url, "api_key": "k"}},
        "models": {"m": {"provider": "up", "model": "m"}},
        "features": {"support": {"owner": "support", "route": {"targets": ["m"]}}},
    }
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    with gateway_factory(config) as (url, gateway):
        began = time.time()
        sent = httpx.post(
            f"{url}/v1/chat/completions",
            headers=auth,
            json={"model": "support", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert sent.status_code == 200, sent.text
        trace_id = sent.headers["x-bounded-trace-id"]
        assert gateway.telemetry.flush()
        spans = httpx.get(f"{url}/v1/traces/{trace_id}", headers=auth).json()["spans"]
    assert int(began) <= int(trace_id[:8], 16) <= int(time.time())
    root = next(s for s in spans if s["parent_span_id"] is None)
    tick = f"{(root['start_time_unix_nano'] >> 30) & 0xFFFF:04x}"
    assert len(spans) > 5 and {s["span_id"][:4] for s in spans} == {tick}
    assert len({s["span_id"] for s in spans}) == len(spans)
