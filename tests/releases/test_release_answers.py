"""A shadow release's two answers to each request, side by side, through the real gateway:
`bounded release answers`, `GET /v1/releases/{feature}/pairs` and the dashboard's releases
page; and `bounded models` / `GET /v1/models` after a release promoted a route.

The stand-in upstream answers by the system prompt it is sent (tests/releases/
test_release_gateway.py): the stable prompt always with valid JSON, the candidate's every
second answer with text that fails the feature's output schema, so which shadow answer
failed validation is known from its text.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from typer.testing import CliRunner

from bounded.cli.main import app
from bounded.gateway.app import Gateway
from bounded.store.db import Database
from bounded.telemetry.store import open_trace_store, trace_store_url
from tests.conftest import ADMIN_KEY, make_config
from tests.releases.test_release_gateway import (
    CANDIDATE,
    GOOD,
    RULES,
    STABLE,
    by_prompt,
    cli,
    config,
    gateway,
    push_candidate,
    two_models,
    write,
)
from tests.standins.faulty_upstream import FaultyUpstream

BAD = "sorry, no JSON today"  # what by_prompt answers when an answer is to fail
UNDECIDED = {**RULES, "min_samples": 1000}  # the evaluator never ends these releases


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    return standin.forget()


@contextlib.contextmanager
def api(url: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=30)
    try:
        yield client
    finally:
        client.close()


def mirrored(api: openai.OpenAI, gw: Gateway, db: Database, store_url: str, n: int) -> list[str]:
    """``n`` requests from distinct users; their trace ids, once both arms' ledger rows and
    traces are stored."""
    trace_ids = []
    for i in range(n):
        raw = api.chat.completions.with_raw_response.create(
            model="extract",
            messages=[{"role": "user", "content": "total?"}],
            extra_headers={"x-bounded-session": f"user-{i}"},
        )
        assert raw.headers["x-bounded-arm"] == "stable"  # users only get the stable answer
        assert raw.parse().choices[0].message.content == GOOD
        trace_ids.append(raw.headers["x-bounded-trace-id"])
    deadline = time.monotonic() + 10
    traces = None
    while True:
        gw.telemetry.flush()
        traces = traces or open_trace_store(trace_store_url(store_url), create=False)
        shadows = db.execute("SELECT COUNT(*) AS n FROM ledger WHERE arm = 'shadow'")[0]["n"]
        traced = 0
        if traces is not None:
            rows = traces.execute("SELECT COUNT(*) AS n FROM traces WHERE arm = 'shadow'")
            traced = rows[0]["n"]
        if shadows >= n and traced >= n:
            break
        assert time.monotonic() < deadline, (shadows, traced)
        time.sleep(0.05)
    if traces is not None:
        traces.close()
    return trace_ids


def answers(path: Path, *args: str) -> Any:
    return cli(path, "answers", "extract", *args)


def login(client: httpx.Client) -> None:
    client.get("/ui/login")
    token = client.cookies.get("bounded_ui_login")
    signed = client.post(
        "/ui/login", data={"key": ADMIN_KEY, "login_token": token, "next": "/ui/releases"}
    )
    assert signed.status_code == 303


def test_a_shadow_release_shows_both_answers_to_each_request(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    upstream.always("m", by_prompt({STABLE: 0, CANDIDATE: 2}))
    data = config(upstream.base_url, UNDECIDED)
    path = write(tmp_path, data, store_url)
    with gateway(data, store_url) as (url, gw, db), api(url) as client:
        version = push_candidate(db)
        started = cli(path, "start", "extract", "--candidate", str(version), "--shadow", "100%")
        assert started.exit_code == 0, started.output
        sent = mirrored(client, gw, db, store_url, 6)

        shown = answers(path, "--json")
        assert shown.exit_code == 0, shown.output
        report = orjson.loads(shown.output)
        assert report["text_policy"]["stored"] is True
        assert report["release"]["candidate_prompt"] == version
        pairs = {p["trace_id"]: p for p in report["data"]}
        assert set(pairs) == set(sent)
        for pair in pairs.values():
            stable, shadow = pair["stable"], pair["shadow"]
            # What the user got, and what the candidate said to the same request.
            assert (stable["text"], stable["validation"], stable["prompt_version"]) == (
                GOOD,
                "passed",
                "1",
            )
            assert STABLE in stable["prompt"] and CANDIDATE in shadow["prompt"]
            assert shadow["prompt_version"] == str(version)
            assert shadow["text"] in (GOOD, BAD)
            assert (shadow["text"] == BAD) == (shadow["validation"] == "failed")
            for arm in (stable, shadow):
                assert arm["status"] == 200 and arm["deployment"] == "m"
                assert arm["latency_ms"] > 0 and arm["cost_usd"] > 0
        assert sum(p["shadow"]["validation"] == "failed" for p in pairs.values()) == 3
        # --differ: only the requests where the arms disagree (here: the candidate failed).
        differing = orjson.loads(answers(path, "--json", "--differ").output)["data"]
        failed = {t for t, p in pairs.items() if p["shadow"]["validation"] == "failed"}
        assert {p["trace_id"] for p in differing} == failed

        # Each arm is its own trace row under the request's trace id (the shadow's spans
        # and answer are not folded into the live request's trace).
        traces = open_trace_store(trace_store_url(store_url), create=False)
        assert traces is not None
        rows = traces.execute("SELECT arm, span_id FROM traces WHERE trace_id = ?", (sent[0],))
        assert sorted(r["arm"] for r in rows) == ["shadow", "stable"]
        assert len({r["span_id"] for r in rows}) == 2
        traces.close()

        table = answers(path, "--limit", "2")
        assert table.exit_code == 0, table.output
        assert f"prompt 1 (stable) vs {version}" in table.output
        assert table.output.count("stable") >= 2 and table.output.count("shadow") >= 2
        assert GOOD in table.output and "text not stored" not in table.output

        # The same report over HTTP; text only for a key that may read text.
        with httpx.Client(base_url=url, timeout=30) as http:
            admin = http.get(
                "/v1/releases/extract/pairs?limit=3",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert admin.status_code == 200, admin.text
            body = admin.json()
            assert len(body["data"]) == 3 and body["data"][0]["stable"]["text"] == GOOD
            _, metrics_only = gw.keys.create("oncall", features=["*"], scopes=("traces:read",))
            _, no_scope = gw.keys.create("app", features=["*"])
            partial = http.get(
                "/v1/releases/extract/pairs", headers={"authorization": f"Bearer {metrics_only}"}
            )
            assert partial.status_code == 200, partial.text
            first = partial.json()["data"][0]
            assert "text" not in first["stable"] and first["shadow"]["validation"]
            assert "traces:read_text" in partial.json()["text_policy"]["note"]
            refused = http.get(
                "/v1/releases/extract/pairs", headers={"authorization": f"Bearer {no_scope}"}
            )
            assert refused.status_code == 403
            error = refused.json()["error"]
            assert error["code"] == "scope_required" and "traces:read" in error["message"]
            assert error["type"] == "permission_error"
            bad = http.get(
                "/v1/releases/extract/pairs?limit=0",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert bad.status_code == 422 and bad.json()["error"]["param"] == "limit"
            only = http.get(
                "/v1/releases/extract/pairs?differ=true",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert {p["trace_id"] for p in only.json()["data"]} == failed
            vague = http.get(
                "/v1/releases/extract/pairs?differ=maybe",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert vague.status_code == 422 and vague.json()["error"]["param"] == "differ"
            missing = http.get(
                "/v1/releases/nope/pairs", headers={"authorization": f"Bearer {ADMIN_KEY}"}
            )
            assert missing.status_code == 404

            # The dashboard's releases page shows the newest pairs.
            login(http)
            page = http.get("/ui/releases")
            assert page.status_code == 200
            assert "Answers side by side" in page.text
            assert BAD in page.text and "12.5" in page.text
            assert sum(t[:16] in page.text for t in sent) == 5  # the newest five
            assert "text not stored" not in page.text


def test_past_the_trace_rate_a_shadow_copy_is_traced_as_its_live_request_was(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    """``telemetry.max_traces_per_s``: a pair is both arms' traces or neither's, never a
    candidate's answer with nothing to compare it to."""
    upstream.always("m", by_prompt({STABLE: 0, CANDIDATE: 0}))
    data = {**config(upstream.base_url, UNDECIDED), "telemetry": {"max_traces_per_s": 2}}
    path = write(tmp_path, data, store_url)
    with gateway(data, store_url) as (url, gw, db), api(url) as client:
        version = push_candidate(db)
        started = cli(path, "start", "extract", "--candidate", str(version), "--shadow", "100%")
        assert started.exit_code == 0, started.output
        sent = []
        for i in range(8):
            if i == 4:  # the allowance spent, half a second brings back one request's worth
                time.sleep(0.6)
            raw = client.chat.completions.with_raw_response.create(
                model="extract",
                messages=[{"role": "user", "content": "total?"}],
                extra_headers={"x-bounded-session": f"user-{i}"},
            )
            sent.append(raw.headers["x-bounded-trace-id"])
        deadline = time.monotonic() + 10
        while db.execute("SELECT COUNT(*) AS n FROM ledger WHERE arm = 'shadow'")[0]["n"] < 8:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.2)  # the last copy closes (and queues its trace) after its ledger row
        assert gw.telemetry.flush()
        traces = open_trace_store(trace_store_url(store_url), create=False)
        assert traces is not None
        arms = {t: set() for t in sent}
        for row in traces.execute(
            "SELECT trace_id, arm FROM traces WHERE arm IN ('stable', 'shadow')"
        ):
            arms[row["trace_id"]].add(row["arm"])
        traces.close()
    paired = [t for t, got in arms.items() if got == {"stable", "shadow"}]
    assert paired, "the first requests are within the rate"
    assert len(paired) < len(sent), "the rest are past it"
    assert all(got in (set(), {"stable", "shadow"}) for got in arms.values()), arms


def test_where_the_policy_stores_no_text_the_pairs_have_metrics_and_say_why(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    upstream.always("m", by_prompt({STABLE: 0, CANDIDATE: 2}))
    data = config(upstream.base_url, UNDECIDED)
    data["features"]["extract"]["risk_tier"] = "high"  # stores no text by default
    path = write(tmp_path, data, store_url)
    with gateway(data, store_url) as (url, gw, db), api(url) as client:
        version = push_candidate(db)
        started = cli(path, "start", "extract", "--candidate", str(version), "--shadow", "100%")
        assert started.exit_code == 0, started.output
        mirrored(client, gw, db, store_url, 4)
        report = orjson.loads(answers(path, "--json").output)
        policy = report["text_policy"]
        assert policy["stored"] is False
        assert "risk tier high" in policy["note"]
        assert "features.extract.telemetry.store_text: true" in policy["note"]
        assert len(report["data"]) == 4
        for pair in report["data"]:
            assert pair["stable"]["text"] is None and pair["shadow"]["text"] is None
            assert pair["stable"]["validation"] == "passed"
            assert pair["shadow"]["validation"] in ("passed", "failed")
        traces = open_trace_store(trace_store_url(store_url), create=False)
        assert traces is not None
        assert traces.execute("SELECT COUNT(*) AS n FROM trace_texts")[0]["n"] == 0
        traces.close()
        table = answers(path)
        assert "text is not stored by the feature's policy" in " ".join(table.output.split())
        assert "(text not stored by policy)" in table.output
        with httpx.Client(base_url=url, timeout=30) as http:
            login(http)
            page = http.get("/ui/releases")
            assert "text not stored by the feature's policy" in page.text
            assert "store_text: true" in page.text


def test_bad_input_to_release_answers_is_refused_with_a_hint(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    data = config(upstream.base_url, UNDECIDED)
    path = write(tmp_path, data, store_url)
    none_yet = answers(path)
    assert none_yet.exit_code == 1 and "no shadow release" in none_yet.output
    assert "--shadow 100%" in none_yet.output
    db = Database.open(store_url)
    version = push_candidate(db)
    db.close()
    canaried = cli(path, "start", "extract", "--candidate", str(version), "--canary", "5%")
    assert canaried.exit_code == 0, canaried.output
    canary = orjson.loads(cli(path, "status", "extract", "--json").output)[0]["id"]
    cases = [
        ((), "no shadow release"),
        (("--release", canary), "is a canary"),
        (("--release", "0000"), "no release '0000'"),
        (("--limit", "0"), "out of range"),
    ]
    for args, message in cases:
        result = answers(path, *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
    other = cli(path, "answers", "nofeature")
    assert other.exit_code == 1 and "no feature 'nofeature'" in other.output


def features_row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if f" {name} " in line and "│" in line)


def test_models_show_the_route_a_release_promoted(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    data = two_models(upstream.base_url, {**UNDECIDED, "auto_promote": False})
    path = write(tmp_path, data, store_url)
    route = tmp_path / "route.yaml"
    route.write_text("targets: [m2]\n")
    runner = CliRunner()
    before = runner.invoke(app, ["models", "--config", str(path)])
    assert before.exit_code == 0, before.output
    row = features_row(before.output, "extract")
    assert "bounded.yaml" in row and "m2" not in row
    assert cli(path, "start", "extract", "--route", str(route), "--canary", "50%").exit_code == 0
    promoted = cli(path, "promote", "extract")
    assert promoted.exit_code == 0, promoted.output
    release_id = promoted.output.split()[1]
    after = runner.invoke(app, ["models", "--config", str(path)])
    assert after.exit_code == 0, after.output
    row = features_row(after.output, "extract")
    assert "m2" in row and f"release {release_id}" in row and "bounded.yaml" not in row

    db = Database.open(store_url)
    gw = Gateway(make_config(data, store_url), db=db, admin_key=ADMIN_KEY)

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=gw.app())
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            return await http.get(path, headers=headers)

    listed = asyncio.run(get("/v1/models")).json()["data"]
    entry = next(e for e in listed if e["id"] == "extract")
    assert entry["bounded"]["targets"] == ["m2"] and entry["bounded"]["route_from"] == "release"
    model = next(e for e in listed if e["id"] == "m")
    assert "route_from" not in model["bounded"]  # a model's own route is no release's
    one = asyncio.run(get("/v1/models/extract")).json()
    assert one["bounded"]["targets"] == ["m2"]
    gw.dashboard.close()
    gw.reader.close()
    db.close()


def test_pairs_on_postgresql_where_traces_share_the_store(
    upstream: FaultyUpstream, tmp_path: Path, postgres_url: str
) -> None:
    upstream.always("m", by_prompt({STABLE: 0, CANDIDATE: 2}))
    data = config(upstream.base_url, UNDECIDED)
    path = write(tmp_path, data, postgres_url)
    with gateway(data, postgres_url) as (url, gw, db), api(url) as client:
        version = push_candidate(db)
        started = cli(path, "start", "extract", "--candidate", str(version), "--shadow", "100%")
        assert started.exit_code == 0, started.output
        sent = mirrored(client, gw, db, postgres_url, 4)
        report = orjson.loads(answers(path, "--json", "--limit", "3").output)
        assert [p["trace_id"] for p in report["data"]] == sent[:0:-1]  # newest first
        for pair in report["data"]:
            assert pair["stable"]["text"] == GOOD and pair["shadow"]["text"] in (GOOD, BAD)
            assert (pair["shadow"]["text"] == BAD) == (pair["shadow"]["validation"] == "failed")
        differing = orjson.loads(answers(path, "--json", "--differ").output)["data"]
        assert len(differing) == 2  # every second candidate answer failed
        assert all(p["shadow"]["validation"] == "failed" for p in differing)
