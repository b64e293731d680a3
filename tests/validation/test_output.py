"""Output validation through the real gateway: schemas, repair, escalation, the cascade.

The stand-in upstream plays models that answer well or badly on cue; the gateway, its
ledger (SQLite) and the checks are the real ones.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response

from bounded.economics.ledger import E10
from bounded.economics.spend import spend_report
from bounded.store.db import Database
from tests.conftest import ADMIN_KEY
from tests.standins.faulty_upstream import FaultyUpstream, ok, stream

INVOICE = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
    "required": ["total", "currency"],
    "additionalProperties": False,
}
GOOD = '{"total": 12.5, "currency": "EUR"}'
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]+$"}},
            "required": ["order_id"],
        },
    },
}


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    return standin.forget()


def config(base_url: str, feature: dict[str, Any], models: tuple[str, ...] = ("cheap", "dear")):
    prices = {"cheap": {"input": "1", "output": "1"}, "dear": {"input": "10", "output": "10"}}
    return {
        "server": {"dev_key": False, "reload": False},
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "sk-standin"}},
        "models": {m: {"provider": "up", "model": m, "price": prices[m]} for m in models},
        "features": {
            "extract": {"owner": "billing", "route": {"targets": list(models)}, **feature}
        },
    }


def ask(url: str, **body: Any) -> httpx.Response:
    payload = {"model": "extract", "messages": [{"role": "user", "content": "invoice?"}], **body}
    return httpx.post(f"{url}/v1/chat/completions", json=payload, headers=AUTH, timeout=30)


def rows(db: Database) -> list[Any]:
    return db.execute("SELECT * FROM ledger ORDER BY id")


def tool_call(name: str, arguments: str) -> Any:
    async def behave(request: Request, body: dict[str, Any]) -> Response:
        reply = {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": name, "arguments": arguments},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
        return Response(orjson.dumps(reply), media_type="application/json")

    return behave


def test_a_valid_answer_passes_and_the_schema_went_upstream(
    upstream: FaultyUpstream, gateway_factory: Any, db: Database
) -> None:
    upstream.always("cheap", ok(GOOD))
    feature = {"output": {"schema": INVOICE}}
    with gateway_factory(config(upstream.base_url, feature)) as (url, _):
        resp = ask(url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-bounded-validation"] == "passed"
    assert resp.json()["bounded"]["validation"]["status"] == "passed"
    sent = upstream.received[0].body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == INVOICE
    assert [r["validation"] for r in rows(db)] == ["passed"]


def test_an_invalid_answer_is_repaired_with_the_problems_named(
    upstream: FaultyUpstream, gateway_factory: Any, db: Database
) -> None:
    upstream.script("cheap", ok('{"total": "twelve"}'), ok(GOOD))
    feature = {"output": {"schema": INVOICE, "max_repairs": 2}}
    with gateway_factory(config(upstream.base_url, feature)) as (url, _):
        resp = ask(url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-bounded-validation"] == "repaired"
    assert resp.json()["choices"][0]["message"]["content"] == GOOD
    repair = upstream.received[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"total": "twelve"}'}
    assert "currency" in repair[-1]["content"]  # the missing field is named
    assert "total" in repair[-1]["content"]  # and the wrong type
    ledger = rows(db)
    assert [(r["validation"], r["flags"]) for r in ledger] == [
        ("failed", None),
        ("passed", "repair"),
    ]
    assert len({r["trace_id"] for r in ledger}) == 1
    assert resp.headers["x-bounded-attempts"] == "2"


def test_after_the_repairs_it_escalates_to_the_next_target(
    upstream: FaultyUpstream, gateway_factory: Any, db: Database
) -> None:
    upstream.always("cheap", ok("not json at all"))
    upstream.always("dear", ok(GOOD))
    feature = {"output": {"schema": INVOICE, "max_repairs": 1}}
    with gateway_factory(config(upstream.base_url, feature)) as (url, _):
        resp = ask(url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-bounded-validation"] == "escalated"
    assert resp.headers["x-bounded-route"] == "dear"
    assert (upstream.count("cheap"), upstream.count("dear")) == (2, 1)
    assert [r["deployment"] for r in rows(db)] == ["cheap", "cheap", "dear"]


def test_when_nothing_passes_it_is_a_422_with_the_findings(
    upstream: FaultyUpstream, gateway_factory: Any, db: Database
) -> None:
    upstream.always("cheap", ok("[]"))
    upstream.always("dear", ok("[]"))
    feature = {"output": {"schema": INVOICE, "max_repairs": 1}}
    with gateway_factory(config(upstream.base_url, feature)) as (url, _):
        resp = ask(url)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "output_invalid"
    assert "not of type 'object'" in error["message"]
    assert resp.headers["x-bounded-validation"] == "failed"
    assert len(rows(db)) == 3  # cheap, its repair, dear: each pass is charged
    assert all(r["validation"] == "failed" for r in rows(db))


@pytest.mark.parametrize(("on_fail", "status", "passes"), [("block", 422, 1), ("log", 200, 1)])
def test_block_and_log_do_not_retry(
    upstream: FaultyUpstream,
    gateway_factory: Any,
    db: Database,
    on_fail: str,
    status: int,
    passes: int,
) -> None:
    upstream.always("cheap", ok("nope"))
    feature = {"output": {"schema": INVOICE, "on_fail": on_fail}}
    with gateway_factory(config(upstream.base_url, feature)) as (url, _):
        resp = ask(url)
    assert resp.status_code == status
    assert resp.headers["x-bounded-validation"] == "failed"
    assert len(rows(db)) == passes


def test_a_streamed_answer_is_released_after_it_passes(
    upstream: FaultyUpstream, gateway_factory: Any, db: Database
) -> None:
    upstream.script(
        "cheap", stream(['{"total":', " 1"]), stream(['{"total": 1,', ' "currency": "X"}'])
    )
    feature = {"output": {"schema": INVOICE}}
    with (
        gateway_factory(config(upstream.base_url, feature)) as (url, _),
        openai.OpenAI(base_url=url + "/v1", api_key=ADMIN_KEY, max_retries=0) as client,
    ):
        raw = client.chat.completions.with_raw_response.create(
            model="extract", messages=[{"role": "user", "content": "x"}], stream=True
        )
        assert raw.headers["x-bounded-validation"] == "repaired"
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == '{"total": 1, "currency": "X"}'  # only the answer that passed
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    last = chunks[-1].model_dump()
    assert last["bounded"]["validation"]["status"] == "repaired"
    assert [r["validation"] for r in rows(db)] == ["failed", "passed"]
    assert all(r["output_tokens"] > 0 for r in rows(db))


def test_tool_calls_are_checked_against_the_declared_schema(
    upstream: FaultyUpstream, gateway_factory: Any, db: Database
) -> None:
    upstream.script(
        "cheap",
        tool_call("lookup_order", '{"order_id": "42"}'),
        tool_call("lookup_order", '{"order_id": "A42"}'),
    )
    feature = {"tools": {"allow": ["lookup_order"]}, "output": {"max_repairs": 1}}
    with gateway_factory(config(upstream.base_url, feature)) as (url, _):
        resp = ask(url, tools=[LOOKUP])
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-bounded-validation"] == "repaired"
    call = resp.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] == '{"order_id": "A42"}'
    assert "does not match" in upstream.received[1].body["messages"][-1]["content"]


def test_a_tool_outside_the_allow_list_is_blocked(
    upstream: FaultyUpstream, gateway_factory: Any
) -> None:
    upstream.always("cheap", tool_call("delete_account", "{}"))
    upstream.always("dear", tool_call("delete_account", "{}"))
    delete = {"type": "function", "function": {"name": "delete_account", "parameters": {}}}
    feature = {"tools": {"allow": ["lookup_order"]}, "output": {"on_fail": "block"}}
    with gateway_factory(config(upstream.base_url, feature)) as (url, _):
        resp = ask(url, tools=[LOOKUP, delete])
    assert resp.status_code == 422
    assert "delete_account" in resp.json()["error"]["message"]
    assert "not allowed" in resp.json()["error"]["message"]


def test_a_cascade_takes_the_cheapest_answer_that_passes(
    upstream: FaultyUpstream, gateway_factory: Any, db: Database
) -> None:
    upstream.always("cheap", ok("{}"))
    upstream.always("dear", ok(GOOD))
    # Listed dearest first: the cascade orders by price, not by the list.
    route = {"strategy": "cascade", "targets": ["dear", "cheap"]}
    feature = {"route": route, "output": {"schema": INVOICE}}
    data = config(upstream.base_url, {})
    data["features"]["extract"].update(feature)
    with gateway_factory(data) as (url, _):
        resp = ask(url)
        upstream.always("cheap", ok(GOOD))
        cheap = ask(url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-bounded-validation"] == "escalated"
    assert (resp.headers["x-bounded-route"], cheap.headers["x-bounded-route"]) == ("dear", "cheap")
    ledger = rows(db)
    assert [(r["deployment"], r["flags"]) for r in ledger] == [
        ("cheap", None),
        ("dear", "cascade"),
        ("cheap", None),
    ]
    # What each accepted answer would have cost on the dearest target: the saving.
    assert ledger[0]["baseline_cost_e10"] is None
    assert ledger[1]["baseline_cost_e10"] == ledger[1]["cost_e10"]
    assert ledger[2]["baseline_cost_e10"] == 10 * ledger[2]["cost_e10"]
    (line,) = spend_report(db, "feature", 0)
    assert line.cascade_cost_usd == line.cost_usd  # every step of both requests
    assert line.always_last_usd == (ledger[1]["cost_e10"] + 10 * ledger[2]["cost_e10"]) / E10
