"""Spend as a user sees it: ledger rows, outcomes, ``GET /v1/spend`` and ``bounded spend``.

One ``bounded serve`` subprocess (SQLite store, the embedded local model) for the module.
Five calls: three to ``answers`` (plain, streamed without usage, streamed with usage) and
two to ``chat`` sharing one ``x-bounded-session``; then outcomes for some of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from importlib.util import find_spec
from typing import Any

import httpx
import pytest
from openai import OpenAI

from bounded.store.db import Database
from tests.e2e.server import ADMIN_KEY, BoundedServer

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(find_spec("llama_cpp") is None, reason="needs the `local` extra"),
]

E10 = Decimal(10**10)
# Generous: the model answers one request at a time, on cores shared with other work.
ROUTE = {"targets": ["smol"], "timeout_s": 300, "deadline_s": 600}
CONFIG: dict[str, Any] = {
    "server": {"dev_key": False, "reload": False},
    "providers": {"local": {"kind": "local"}},
    "models": {
        "smol": {
            "provider": "local",
            "model": "smollm2-135m-instruct",
            "price": {"input": "0.5", "output": "1.5"},
        }
    },
    "features": {
        "answers": {"owner": "support-team", "route": ROUTE},
        "chat": {"owner": "growth-team", "route": ROUTE},
    },
}
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
ASK = {"messages": STORY, "max_tokens": 5, "temperature": 0}


@dataclass
class Calls:
    plain: Any  # the parsed ChatCompletion
    plain_trace: str
    plain_cost: Decimal
    bare_stream: list[Any]  # chunks of a stream that did not ask for usage
    bare_trace: str
    usage_stream: list[Any]
    usage_trace: str
    session_traces: list[str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoundedServer]:
    with BoundedServer.start(tmp_path_factory.mktemp("spend"), CONFIG, ready_timeout_s=90) as s:
        yield s


@pytest.fixture(scope="module")
def calls(server: BoundedServer) -> Calls:
    with OpenAI(base_url=server.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=600) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model="answers", **ASK)
        bare = sdk.chat.completions.with_raw_response.create(model="answers", stream=True, **ASK)
        bare_chunks = list(bare.parse())
        with_usage = sdk.chat.completions.with_raw_response.create(
            model="answers", stream=True, stream_options={"include_usage": True}, **ASK
        )
        usage_chunks = list(with_usage.parse())
        session = [
            sdk.chat.completions.with_raw_response.create(
                model="chat", extra_headers={"x-bounded-session": "conversation-7"}, **ASK
            )
            for _ in range(2)
        ]
    return Calls(
        raw.parse(),
        raw.headers["x-bounded-trace-id"],
        Decimal(raw.headers["x-bounded-cost-usd"]),
        bare_chunks,
        bare.headers["x-bounded-trace-id"],
        usage_chunks,
        with_usage.headers["x-bounded-trace-id"],
        [r.headers["x-bounded-trace-id"] for r in session],
    )


def ledger(server: BoundedServer) -> dict[str, dict[str, Any]]:
    db = Database.open(f"sqlite:///{server.store_dir / 'bounded.db'}", migrate=False)
    try:
        return {row["trace_id"]: dict(row) for row in db.execute("SELECT * FROM ledger")}
    finally:
        db.close()


def test_plain_and_streamed_calls_have_ledger_rows(server: BoundedServer, calls: Calls) -> None:
    rows = ledger(server)
    plain = rows[calls.plain_trace]
    assert plain["feature"] == "answers" and plain["team"] == "support-team"
    assert plain["deployment"] == "smol" and plain["status"] == 200 and not plain["stream"]
    assert plain["usage_source"] == "provider"
    assert plain["input_tokens"] == calls.plain.usage.prompt_tokens
    assert plain["output_tokens"] == calls.plain.usage.completion_tokens == 5
    assert Decimal(plain["cost_e10"]) / E10 == calls.plain_cost
    expected = (Decimal("0.5") * calls.plain.usage.prompt_tokens + Decimal("1.5") * 5) / 10**6
    assert calls.plain_cost == expected

    # The client did not ask for usage and got none, yet the ledger has the real usage.
    assert all(chunk.usage is None for chunk in calls.bare_stream)
    bare = rows[calls.bare_trace]
    assert bare["stream"] and bare["usage_source"] == "provider"
    assert (bare["input_tokens"], bare["output_tokens"]) == (plain["input_tokens"], 5)
    assert bare["cost_e10"] == plain["cost_e10"]
    assert bare["ttft_ms"] is not None and bare["ttft_ms"] <= bare["latency_ms"]

    # Asked for usage: exactly one usage chunk, the last, and it matches the ledger.
    usage_chunks = [chunk for chunk in calls.usage_stream if chunk.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is calls.usage_stream[-1]
    usage = usage_chunks[0].usage
    row = rows[calls.usage_trace]
    assert (row["input_tokens"], row["output_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )


def post_outcome(server: BoundedServer, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/outcomes",
        json=payload,
        timeout=120,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )


@pytest.fixture(scope="module")
def outcomes(server: BoundedServer, calls: Calls) -> list[httpx.Response]:
    return [
        post_outcome(server, {"trace_id": calls.plain_trace, "outcome": "success", "value": 3}),
        post_outcome(server, {"trace_id": calls.bare_trace, "outcome": "failure"}),
        post_outcome(server, {"trace_id": "conversation-7", "outcome": "success"}),
    ]


def test_outcomes_link_by_trace_id_and_by_session(
    server: BoundedServer, outcomes: list[httpx.Response]
) -> None:
    assert [r.status_code for r in outcomes] == [201, 201, 201]
    assert [r.json()["linked_calls"] for r in outcomes] == [1, 1, 2]

    unknown = post_outcome(server, {"trace_id": "no-such-call", "outcome": "success"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "trace_not_found"
    bad = post_outcome(server, {"trace_id": "conversation-7", "outcome": "great"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "outcome"
    # No store takes a NUL (PostgreSQL's would fail the query): refused as the client's.
    nul = post_outcome(server, {"trace_id": "conversation\x007", "outcome": "success"})
    assert nul.status_code == 422 and nul.json()["error"]["param"] == "trace_id"


def expected_spend(server: BoundedServer, calls: Calls) -> dict[str, Decimal]:
    rows = ledger(server)
    answers = sum(
        (
            Decimal(rows[t]["cost_e10"]) / E10
            for t in (calls.plain_trace, calls.bare_trace, calls.usage_trace)
        ),
        Decimal(0),
    )
    chat = sum((Decimal(rows[t]["cost_e10"]) / E10 for t in calls.session_traces), Decimal(0))
    return {"answers": answers, "chat": chat}


def test_spend_api_reports_cost_per_successful_outcome(
    server: BoundedServer, calls: Calls, outcomes: list[httpx.Response]
) -> None:
    r = httpx.get(
        f"{server.base_url}/spend",
        params={"period": "day"},
        timeout=120,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    cost = expected_spend(server, calls)
    by_feature = {line["group"]: line for line in report["feature"]}
    answers, chat = by_feature["answers"], by_feature["chat"]
    assert (answers["requests"], answers["successes"], answers["failures"]) == (3, 1, 1)
    assert Decimal(answers["cost_usd"]) == cost["answers"]
    assert Decimal(answers["cost_per_success_usd"]) == cost["answers"].quantize(Decimal("1e-8"))
    assert answers["outcome_value"] == 3
    # One outcome for the session pays for both of its calls.
    assert (chat["requests"], chat["successes"], chat["failures"]) == (2, 1, 0)
    assert Decimal(chat["cost_per_success_usd"]) == cost["chat"].quantize(Decimal("1e-8"))

    by_team = {line["group"]: line for line in report["team"]}
    assert Decimal(by_team["support-team"]["cost_usd"]) == cost["answers"]
    assert Decimal(by_team["growth-team"]["cost_usd"]) == cost["chat"]
    (model,) = report["model"]
    assert model["group"] == "smol"
    assert (model["requests"], model["successes"], model["failures"]) == (5, 2, 1)


def test_bounded_spend_cli_prints_tables_by_feature_team_and_model(
    server: BoundedServer, calls: Calls, outcomes: list[httpx.Response]
) -> None:
    cost = expected_spend(server, calls)
    result = server.cli("spend", "--period", "day")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for title in ("by feature", "by team", "by model"):
        assert title in text
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    answers = [cell.strip() for cell in lines["answers"].split("│")[1:-1]]
    assert answers[1] == "3" and answers[6:8] == ["1", "1"]
    assert Decimal(answers[5]) == cost["answers"]
    assert Decimal(answers[8]) == cost["answers"].quantize(Decimal("1e-8"))
    assert "growth-team" in lines and "support-team" in lines and "smol" in lines
    total = cost["answers"] + cost["chat"]
    assert "over 5 request(s)" in text and f"${format(total.normalize(), 'f')}" in text

    as_json = server.cli("spend", "--period", "day", "--by", "feature", "--json")
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert set(payload) == {"period", "since", "until", "feature"}
    assert {line["group"] for line in payload["feature"]} == {"answers", "chat"}

    wrong = server.cli("spend", "--by", "colour")
    assert wrong.returncode == 2 and "unknown --by colour" in wrong.stderr
