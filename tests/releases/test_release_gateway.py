"""Releases end to end: the real gateway, the official openai SDK, the real store, the CLI.

The stand-in upstream answers by the system prompt it is sent: the stable prompt version
and the candidate's are told apart by their text, and each fails the feature's output schema
on a fixed rhythm (every k-th answer), so which candidate is worse is known, and the
decisions of the background evaluator can be checked against it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import yaml
from starlette.requests import Request
from starlette.responses import Response
from typer.testing import CliRunner

from bounded.audit.log import AuditLog
from bounded.cli.release import release_app
from bounded.gateway.app import Gateway
from bounded.prompts.store import PRODUCTION, PromptStore
from bounded.prompts.template import PromptTemplate
from bounded.releases.signals import read_arms
from bounded.releases.stats import Summary
from bounded.releases.store import ReleaseStore
from bounded.store.db import Database
from tests.conftest import ADMIN_KEY, make_config, serve_in_thread
from tests.standins.faulty_upstream import FaultyUpstream, ok

STABLE, CANDIDATE = "You are version one.", "You are version two."
GOOD = '{"total": 12.5}'
SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}},
    "required": ["total"],
}
RULES = {
    "signals": ["validation_failures", "error_rate"],
    "max_regression": 0.1,
    "min_samples": 30,
    "confidence": 0.95,
    "evaluate_every_s": 0.1,
}


@pytest.fixture
def upstream(standin: FaultyUpstream) -> FaultyUpstream:
    return standin.forget()


def by_prompt(rhythm: dict[str, int]) -> Any:
    """Answer by the system prompt: every k-th answer for that prompt is not JSON (0: none)."""
    counters = {text: itertools.count(1) for text in rhythm}
    lock = threading.Lock()

    async def behave(request: Request, body: dict[str, Any]) -> Response:
        system = next(m["content"] for m in body["messages"] if m["role"] == "system")
        every = rhythm[system]
        with lock:
            n = next(counters[system])
        content = "sorry, no JSON today" if every and n % every == 0 else GOOD
        if body.get("stream"):
            return await ok(content)(request, body)
        reply = {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
        return Response(orjson.dumps(reply), media_type="application/json")

    return behave


def config(base_url: str, rules: dict[str, Any] = RULES) -> dict[str, Any]:
    return {
        "server": {"dev_key": False, "reload": False},
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "sk-standin"}},
        "models": {"m": {"provider": "up", "model": "m", "price": {"input": 1, "output": 1}}},
        "features": {
            "extract": {
                "owner": "billing",
                "risk_tier": "low",
                "route": {"targets": ["m"]},
                "prompt": {"system": STABLE},
                "output": {"schema": SCHEMA, "on_fail": "log"},
                "guards": {"input": [], "output": []},
                "release": rules,
            }
        },
    }


def write(tmp_path: Path, data: dict[str, Any], store: str) -> Path:
    path = tmp_path / "bounded.yaml"
    path.write_text(yaml.safe_dump({**data, "server": {**data["server"], "store": store}}))
    return path


def cli(path: Path, *args: str) -> Any:
    result = CliRunner().invoke(release_app, [*args, "--config", str(path)])
    return result


def push_candidate(db: Database) -> int:
    template = PromptTemplate((("system", CANDIDATE),))
    return PromptStore(db).push("extract", template, author="ana", message="v2").version.version


_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def client(url: str) -> openai.OpenAI:
    api = openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=30)
    _clients.append(api)
    return api


def ask(api: openai.OpenAI, user: str) -> Any:
    return api.chat.completions.with_raw_response.create(
        model="extract",
        messages=[{"role": "user", "content": "total?"}],
        extra_headers={"x-bounded-session": user},
    )


def traffic(
    apis: list[openai.OpenAI], store: ReleaseStore, release_id: str, limit: int
) -> dict[str, int]:
    """Requests from distinct users until the release is decided (or ``limit``)."""
    arms = {"stable": 0, "canary": 0}
    for i in range(limit):
        raw = ask(apis[i % len(apis)], f"user-{i}")
        arms[raw.headers.get("x-bounded-arm", "none")] = (
            arms.get(raw.headers.get("x-bounded-arm", "none"), 0) + 1
        )
        if i % 5 == 4 and store.get(release_id).state != "running":
            break
    return arms


def wait_decided(store: ReleaseStore, release_id: str, timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = store.get(release_id).state
        if state != "running":
            return state
        time.sleep(0.05)
    return store.get(release_id).state


@contextlib.contextmanager
def gateway(data: dict[str, Any], store_url: str) -> Iterator[tuple[str, Gateway, Database]]:
    db = Database.open(store_url)
    gw = Gateway(make_config(data, store_url), db=db, admin_key=ADMIN_KEY)
    try:
        with serve_in_thread(gw.app()) as url:
            yield url, gw, db
    finally:
        db.close()


def test_a_candidate_that_fails_validation_more_often_is_rolled_back(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    upstream.always("m", by_prompt({STABLE: 20, CANDIDATE: 2}))
    data = config(upstream.base_url)
    path = write(tmp_path, data, store_url)
    with gateway(data, store_url) as (url, _, db):
        version = push_candidate(db)
        started = cli(path, "start", "extract", "--candidate", str(version), "--canary", "50%")
        assert started.exit_code == 0, started.output
        store = ReleaseStore(db)
        release = store.running("extract")
        assert release is not None and release.candidate_prompt == version
        arms = traffic([client(url)], store, release.id, 400)
        assert arms["canary"] > 0 and arms["stable"] > 0
        assert wait_decided(store, release.id) == "rolled_back"
        ended = store.get(release.id)
        assert ended.ended_by == "bounded-evaluator"
        # Both arms had enough requests before the test decided; the evidence says so.
        assert ended.decision is not None
        signals = {s["signal"]: s for s in ended.decision["verdict"]["signals"]}
        assert signals["validation_failures"]["state"] == "worse"
        assert (
            min(
                signals["validation_failures"]["n_stable"],
                signals["validation_failures"]["n_candidate"],
            )
            >= 30
        )
        assert PromptStore(db).labels("extract")[PRODUCTION] == 1
        entries = AuditLog(db).entries(action="release")
        assert [e.action for e in entries] == ["release.start", "release.rollback"]
        assert entries[-1].detail["verdict"]["action"] == "rollback"
        # Every user is back on the stable prompt at once.
        after = [ask(client(url), f"user-{i}") for i in range(10)]
        assert {r.headers["x-bounded-prompt-version"] for r in after} == {"1"}
        assert all("x-bounded-arm" not in r.headers for r in after)
        rows = db.execute(
            "SELECT DISTINCT arm FROM ledger WHERE prompt_version = ?", (str(version),)
        )
        assert [r["arm"] for r in rows] == ["canary"]


def test_a_better_candidate_is_promoted(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    upstream.always("m", by_prompt({STABLE: 4, CANDIDATE: 0}))
    data = config(upstream.base_url)
    path = write(tmp_path, data, store_url)
    with gateway(data, store_url) as (url, _, db):
        version = push_candidate(db)
        assert (
            cli(path, "start", "extract", "--candidate", str(version), "--canary", "50%").exit_code
            == 0
        )
        store = ReleaseStore(db)
        release = store.running("extract")
        assert release is not None
        traffic([client(url)], store, release.id, 400)
        assert wait_decided(store, release.id) == "promoted"
        assert PromptStore(db).labels("extract")[PRODUCTION] == version
        after = ask(client(url), "someone-new")
        assert after.headers["x-bounded-prompt-version"] == str(version)
        status = cli(path, "status", "extract")
        assert status.exit_code == 0
        assert "promoted" in status.output and "bounded-evaluator" in status.output
        assert "cost: canary $" in status.output and "validation_failures" in status.output


def test_a_candidate_that_is_only_noisier_is_not_decided_before_enough_samples(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    # The candidate fails no more often in the long run, but its failures come in a burst
    # at the start (10 of its first 12 answers): a fixed-sample test read now would call
    # it worse.
    burst = iter([True] * 5 + [False] + [True] * 4 + [False, True])
    inner = by_prompt({STABLE: 10, CANDIDATE: 0})
    failing = by_prompt({CANDIDATE: 1})

    async def behave(request: Request, body: dict[str, Any]) -> Response:
        system = next(m["content"] for m in body["messages"] if m["role"] == "system")
        if system == CANDIDATE and next(burst, False):
            return await failing(request, body)
        return await inner(request, body)

    upstream.always("m", behave)
    data = config(upstream.base_url, {**RULES, "min_samples": 40})
    path = write(tmp_path, data, store_url)
    with gateway(data, store_url) as (url, gw, db):
        version = push_candidate(db)
        started = cli(path, "start", "extract", "--candidate", str(version), "--canary", "50%")
        assert started.exit_code == 0
        store = ReleaseStore(db)
        release = store.running("extract")
        assert release is not None
        api = client(url)
        canary = i = 0
        while canary < 20:
            canary += ask(api, f"user-{i}").headers.get("x-bounded-arm") == "canary"
            i += 1
        looks = gw.releases.evaluator.looks
        time.sleep(0.5)  # several more looks of the evaluator at this sample size
        assert gw.releases.evaluator.looks > looks + 2
        assert store.get(release.id).state == "running"
        stable, cand = read_arms(db, release)
        s = Summary.of([float(x.validation_failed) for x in stable], binary=True)
        c = Summary.of([float(x.validation_failed) for x in cand], binary=True)
        naive_z = (c.mean - s.mean) / math.sqrt(s.variance / s.n + c.variance / c.n)
        assert naive_z > 1.96  # what the evaluator did not act on
        status = cli(path, "status", "extract", "--json")
        live = orjson.loads(status.output)[0]["live"]
        assert live["action"] == "continue" and live["reason"].startswith("collecting")


def test_bad_input_to_release_start_is_refused_with_a_hint(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    data = config(upstream.base_url)
    path = write(tmp_path, data, store_url)
    route = tmp_path / "route.yaml"
    route.write_text("targets: [nope]\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("targets: [m\nstrategy: ordered\n")
    cases = [
        (["start", "nofeature", "--candidate", "1", "--canary", "5%"], "no feature 'nofeature'"),
        (["start", "extract", "--candidate", "9", "--canary", "5%"], "no prompt version"),
        (["start", "extract", "--candidate", "1"], "exactly one of --shadow"),
        (["start", "extract", "--candidate", "1", "--canary", "250%"], "out of range"),
        (["start", "extract", "--candidate", "1", "--canary", "five"], "not a percentage"),
        (["start", "extract", "--route", str(route), "--shadow", "100%"], "name no model: nope"),
        (["start", "extract", "--route", str(broken), "--shadow", "100%"], "broken.yaml:"),
        (["promote", "extract"], "no release running"),
    ]
    for args, message in cases:
        result = cli(path, *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
    db = Database.open(store_url)
    assert ReleaseStore(db).latest() == []
    db.close()


def test_a_high_risk_feature_needs_an_eval_gate_before_a_canary(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    data = config(upstream.base_url)
    data["features"]["extract"]["risk_tier"] = "high"
    path = write(tmp_path, data, store_url)
    db = Database.open(store_url)
    version = push_candidate(db)
    refused = cli(path, "start", "extract", "--candidate", str(version), "--canary", "5%")
    assert refused.exit_code == 1 and "passing eval run" in refused.output
    db.execute(
        "INSERT INTO eval_runs (id, created_at, suite, feature, prompt_version, passed,"
        " successes, failures, errors, pass_rate, duration_ms, summary)"
        " VALUES ('run1', ?, 'suite.yaml', 'extract', ?, ?, 10, 0, 0, 1.0, 5, '{}')",
        (time.time(), str(version), True),
    )
    started = cli(path, "start", "extract", "--candidate", str(version), "--canary", "5%")
    assert started.exit_code == 0, started.output
    start = AuditLog(db).entries(action="release.start")[-1]
    assert start.detail["eval_gate"]["run"] == "run1"
    db.close()


def test_two_replicas_on_postgresql_see_the_same_decision(
    upstream: FaultyUpstream, tmp_path: Path, postgres_url: str
) -> None:
    upstream.always("m", by_prompt({STABLE: 20, CANDIDATE: 2}))
    data = config(upstream.base_url)
    path = write(tmp_path, data, postgres_url)
    with (
        gateway(data, postgres_url) as (url_a, gw_a, db),
        gateway(data, postgres_url) as (url_b, gw_b, _),
    ):
        version = push_candidate(db)
        started = cli(path, "start", "extract", "--candidate", str(version), "--canary", "50%")
        assert started.exit_code == 0, started.output
        store = ReleaseStore(db)
        release = store.running("extract")
        assert release is not None
        arms = traffic([client(url_a), client(url_b)], store, release.id, 400)
        assert arms["canary"] > 0
        assert wait_decided(store, release.id) == "rolled_back"
        # Both evaluators looked; the store let one of them decide, once.
        assert gw_a.releases.evaluator.looks > 0 and gw_b.releases.evaluator.looks > 0
        assert len(AuditLog(db).entries(action="release.rollback")) == 1
        # Each replica serves the decision (the other one within its cache's check).
        deadline = time.monotonic() + 5
        while True:
            served = [ask(client(u), f"user-{i}") for u in (url_a, url_b) for i in range(8)]
            versions = {r.headers["x-bounded-prompt-version"] for r in served}
            if versions == {"1"} and all("x-bounded-arm" not in r.headers for r in served):
                break
            assert time.monotonic() < deadline, versions
            time.sleep(0.2)


def two_models(base_url: str, rules: dict[str, Any] = RULES) -> dict[str, Any]:
    data = config(base_url, rules)
    data["models"]["m2"] = {"provider": "up", "model": "m2", "price": {"input": 2, "output": 2}}
    return data


def test_a_shadow_mirrors_traffic_off_the_request_path_and_is_decided_too(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    upstream.always("m", by_prompt({STABLE: 20}))
    upstream.always("m2", by_prompt({STABLE: 2}))  # the candidate route: every 2nd fails
    data = two_models(upstream.base_url)
    path = write(tmp_path, data, store_url)
    route = tmp_path / "route.yaml"
    route.write_text("route:\n  targets: [m2]\n")
    with gateway(data, store_url) as (url, gw, db):
        started = cli(path, "start", "extract", "--route", str(route), "--shadow", "100%")
        assert started.exit_code == 0, started.output
        store = ReleaseStore(db)
        release = store.running("extract")
        assert release is not None and release.candidate_route is not None
        api = client(url)
        # A streamed request is mirrored as a plain one; the client's stream is untouched.
        with api.chat.completions.create(
            model="extract", messages=[{"role": "user", "content": "total?"}], stream=True
        ) as chunks:
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == GOOD
        replies = []
        for i in range(300):
            raw = ask(api, f"user-{i}")
            replies.append(raw)
            if i % 5 == 4 and store.get(release.id).state != "running":
                break
        # Users only ever got the stable arm's answers.
        assert {r.headers["x-bounded-route"] for r in replies} == {"m"}
        # (no header once the release is decided: no release, no arm)
        assert {r.headers.get("x-bounded-arm", "stable") for r in replies} == {"stable"}
        assert replies[0].headers["x-bounded-arm"] == "stable"
        assert wait_decided(store, release.id) == "rolled_back"
        rows = db.execute(
            "SELECT trace_id, arm, deployment, cost_e10 FROM ledger WHERE trace_id = ?",
            (replies[0].headers["x-bounded-trace-id"],),
        )
        assert sorted((r["arm"], r["deployment"]) for r in rows) == [
            ("shadow", "m2"),
            ("stable", "m"),
        ]
        decision = store.get(release.id).decision
        assert decision is not None
        cost = decision["cost_usd_by_arm"]
        assert cost["shadow"] > cost["stable"] > 0  # m2 is the dearer model
        # Rolled back: the feature's own route again, no copies any more (once the copies
        # sent before the decision have landed: they run in the background).
        deadline = time.monotonic() + 5
        while gw.releases.mirror.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        before = upstream.count("m2")
        ask(api, "after")
        time.sleep(0.2)
        assert upstream.count("m2") == before


def test_promoting_a_release_by_hand_moves_the_route_for_every_request(
    upstream: FaultyUpstream, tmp_path: Path, store_url: str
) -> None:
    upstream.always("m", by_prompt({STABLE: 0}))
    upstream.always("m2", by_prompt({STABLE: 0}))
    data = two_models(upstream.base_url, {**RULES, "auto_promote": False})
    path = write(tmp_path, data, store_url)
    route = tmp_path / "route.yaml"
    route.write_text("targets: [m2]\n")
    with gateway(data, store_url) as (url, _, db):
        assert (
            cli(path, "start", "extract", "--route", str(route), "--canary", "50%").exit_code == 0
        )
        api = client(url)
        served = {ask(api, f"user-{i}").headers["x-bounded-route"] for i in range(20)}
        assert served == {"m", "m2"}
        promoted = cli(path, "promote", "extract")
        assert promoted.exit_code == 0, promoted.output
        entry = AuditLog(db).entries(action="release.promote")[-1]
        assert entry.detail["automatic"] is False
        deadline = time.monotonic() + 5
        while {ask(api, f"user-{i}").headers["x-bounded-route"] for i in range(20)} != {"m2"}:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_two_replicas_starting_a_release_at_once_start_one(postgres_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from bounded.config.schema import RouteConfig
    from bounded.releases.store import ReleaseConflict

    dbs = [Database.open(postgres_url) for _ in range(4)]
    barrier = threading.Barrier(len(dbs))

    def start(db: Database) -> str:
        barrier.wait()
        try:
            ReleaseStore(db).start(
                "concurrent",
                mode="shadow",
                share=1.0,
                candidate_prompt=None,
                route=RouteConfig(targets=("m",)),
                actor="ci",
            )
        except ReleaseConflict:
            return "refused"
        return "started"

    try:
        with ThreadPoolExecutor(len(dbs)) as pool:
            results = sorted(pool.map(start, dbs))
        assert results == ["refused", "refused", "refused", "started"]
        assert len(ReleaseStore(dbs[0]).latest("concurrent")) == 1
    finally:
        for db in dbs:
            db.close()
