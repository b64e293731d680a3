"""The hourly rollup: the Spend, Features and Overview pages read it, and their figures
equal what SQL over the raw ledger says, late rows and late outcomes included."""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from bounded.dashboard import data, records, rolled
from bounded.dashboard.runs import Runs
from bounded.economics import periods
from bounded.economics.ledger import COLUMNS, INSERT, LedgerRow, SqlLedger
from bounded.economics.pg_ledger import PostgresLedger
from bounded.economics.rollup import hour_of, read_state, roll_up, roll_up_all
from bounded.economics.spend import record_outcome, spend_since
from bounded.governance.signals import percentile
from bounded.store.db import Database
from bounded.store.urls import psycopg_url
from tests.conftest import make_config

HOUR = 3600.0
FEATURES = ("answer", "extract", "draft")
TEAMS = {"answer": "support", "extract": "finance", "draft": "support"}
DEPLOYMENTS = ("main", "backup", "cheap")
BUDGETS: dict[str, Any] = {
    "answer": [{"amount_usd": 5, "period": "day"}, {"amount_usd": 50, "period": "total"}],
    "extract": {"amount_usd": 20, "period": "month"},
    "draft": {"amount_usd": 10, "period": "week", "mode": "soft"},
}


def config(store_url: str) -> Any:
    return make_config(
        {
            "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "models": {d: {"provider": "up", "model": d} for d in DEPLOYMENTS},
            "features": {
                f: {"owner": "o", "team": TEAMS[f], "risk_tier": "low",
                    "route": {"targets": list(DEPLOYMENTS)}, "budget": BUDGETS[f]}
                for f in FEATURES
            },
            "teams": {
                "support": {"budget": {"amount_usd": 30, "period": "hour"}},
                "finance": {"budget": [{"amount_usd": 40, "period": "week"},
                                       {"amount_usd": 90, "period": "total"}]},
            },
            "alerts": {"window_s": HOUR, "baseline_s": 7 * 24 * HOUR, "min_samples": 3},
        },
        store_url,
    )  # fmt: skip


def ledger_row(rng: random.Random, ts: float, trace: str, feature: str | None = None) -> LedgerRow:
    feature = feature or rng.choice(FEATURES)
    failed = rng.random() < 0.1
    return LedgerRow(
        ts=ts, trace_id=trace, session_id=None, key_id="k1", team=TEAMS[feature],
        feature=feature, arm="stable", provider="up", deployment=rng.choice(DEPLOYMENTS),
        model="m", input_tokens=rng.randint(10, 900), output_tokens=rng.randint(5, 300),
        cached_tokens=0, reasoning_tokens=0, cost_e10=rng.randint(10**4, 10**8),
        usage_source="provider", latency_ms=rng.lognormvariate(5, 0.7), ttft_ms=None,
        status=502 if failed else 200, error_class="unavailable" if failed else None,
        attempts=1, stream=False, operation="embeddings" if rng.random() < 0.1 else "chat",
        validation=rng.choice([None, "passed", "passed", "failed"]),
        groundedness=rng.choice([None, 0.25, 0.5, 1.0]),
    )  # fmt: skip


def record(db: Database, rows: list[LedgerRow]) -> None:
    """Through the ledger's own writer (group commit), as the gateway records them."""

    async def write() -> None:
        ledger: Any = SqlLedger(db) if db.dialect == "sqlite" else PostgresLedger(db.url)
        await asyncio.gather(*(ledger.record(r) for r in rows))
        await ledger.aclose()

    asyncio.run(write())


def traffic(db: Database, now: float, seed: int = 1) -> list[str]:
    """Three days of calls (a trace now and then with calls in two hours), outcomes for
    a third of the traces, a second outcome for some; the traces' ids."""
    rng = random.Random(seed)
    rows, traces = [], []
    for i in range(900):
        ts = now - rng.uniform(0, 3 * 24 * HOUR)
        trace = f"{seed}-t{i}"
        traces.append(trace)
        rows.append(ledger_row(rng, ts, trace))
        if i % 7 == 0:  # a conversation's next call, an hour or two later (or now)
            rows.append(ledger_row(rng, min(ts + rng.uniform(600, 7200), now - 1), trace))
    record(db, rows)
    for trace in traces[::3]:
        record_outcome(db, trace, rng.choice(["success", "success", "failure"]), None, None)
    for trace in traces[::15]:
        record_outcome(db, trace, "failure", None, None)  # the latest one counts
    return traces


def raw_spend(db: Database, column: str, start: float, end: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in db.execute(
        f"SELECT {column} AS grp, COUNT(*) AS n, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0"
        " END) AS errors, SUM(input_tokens + output_tokens) AS tokens, SUM(cost_e10) AS cost"
        f" FROM ledger WHERE ts >= ? AND ts < ? GROUP BY {column}",
        (start, end),
    ):
        out[r["grp"] or "—"] = {
            "requests": int(r["n"]), "errors": int(r["errors"]), "tokens": int(r["tokens"]),
            "cost": int(r["cost"]) / 1e10, "successes": 0, "judged": 0,
        }  # fmt: skip
    for name, wins, judged in raw_outcomes(db, column, start, end):
        out.setdefault(name or "—", {"requests": 0})
        out[name or "—"].update(successes=wins, judged=judged)
    return out


def raw_outcomes(db: Database, column: str, start: float, end: float) -> list[tuple[Any, ...]]:
    """Each trace's latest outcome, once per group, where its first call in the group is."""
    return [
        (r["grp"], int(r["wins"]), int(r["judged"]))
        for r in db.execute(
            "SELECT f.grp AS grp, SUM(CASE WHEN o.outcome = 'success' THEN 1 ELSE 0 END) AS wins,"
            f" COUNT(*) AS judged FROM (SELECT trace_id, {column} AS grp, MIN(ts) AS first"
            f" FROM ledger GROUP BY trace_id, {column}) f JOIN outcomes o ON o.trace_id ="
            " f.trace_id WHERE o.id = (SELECT MAX(o2.id) FROM outcomes o2 WHERE o2.trace_id ="
            " f.trace_id) AND f.first >= ? AND f.first < ? GROUP BY f.grp",
            (start, end),
        )
    ]


def assert_spend_equals_raw(db: Database) -> None:
    for by, column in data.SPEND_GROUPS.items():
        for window in ("24h", "7d", "30d"):
            w = data.Window.of(window)
            page = {row["name"]: row for row in data.spend(db, by, w)["table"]}
            raw = raw_spend(db, column, w.start, w.end)
            assert set(page) == set(raw), (by, window)
            for name, want in raw.items():
                got = page[name]
                for figure in ("requests", "errors", "tokens", "successes", "judged"):
                    assert got[figure] == want.get(figure, 0), (by, window, name, figure)
                assert got["cost"] == pytest.approx(want.get("cost", 0.0), rel=1e-12, abs=1e-12)


def assert_features_equal_raw(db: Database, store_url: str) -> None:
    cfg = config(store_url)
    w = data.Window.of("24h")
    rows = {row["name"]: row for row in records.features(db, cfg, w)}
    wins = {name: (won, judged) for name, won, judged in raw_outcomes(db, "feature", w.start,
                                                                       w.end)}  # fmt: skip
    for name in FEATURES:
        chats = db.execute(
            "SELECT status, cost_e10, latency_ms, validation FROM ledger WHERE feature = ?"
            " AND operation = 'chat' AND ts >= ? AND ts < ?",
            (name, w.start, w.end),
        )
        s = rows[name]["signals"]
        assert s.requests == len(chats)
        assert s.errors == sum(r["status"] >= 400 for r in chats)
        assert s.validation_failed == sum(r["validation"] == "failed" for r in chats)
        assert s.cost_e10 == sum(int(r["cost_e10"]) for r in chats)
        assert s.latency_p95_ms == percentile([float(r["latency_ms"]) for r in chats], 0.95)
        won, judged = wins.get(name, (0, 0))
        assert (s.successes, s.successes + s.failures) == (won, judged), name
    total = data.overview(db, cfg, w)["total"]
    chats = db.execute(
        "SELECT COUNT(*) AS n, SUM(cost_e10) AS cost FROM ledger WHERE operation = 'chat'"
        " AND ts >= ? AND ts < ?",
        (w.start, w.end),
    )[0]
    assert (total.requests, total.cost_e10) == (int(chats["n"]), int(chats["cost"]))
    assert total.successes == sum(won for won, _ in wins.values())


def assert_month_by_day_equals_raw(db: Database, store_url: str) -> None:
    """The 30-day overview's cells (a day each, the rolled hours summed per day in SQL)."""
    w = data.Window.of("30d")
    raw: dict[tuple[str, int], list[Any]] = {}
    for r in db.execute(
        "SELECT feature, ts, cost_e10, latency_ms FROM ledger WHERE operation = 'chat'"
        " AND ts >= ? AND ts < ?",
        (w.start, w.end),
    ):
        cell = raw.setdefault((r["feature"] or "-", int((r["ts"] - w.start) // w.bucket_s)),
                              [0, 0, []])  # fmt: skip
        cell[0] += 1
        cell[1] += int(r["cost_e10"])
        cell[2].append(float(r["latency_ms"]))
    cells = rolled.grid(db, w.start, w.end, w.bucket_s)
    assert {key for key, s in cells.items() if s.requests} == set(raw)
    for key, (n, cost, latencies) in raw.items():
        s = cells[key]
        assert (s.requests, s.cost_e10) == (n, cost), key
        assert s.latency_p95_ms == percentile(latencies, 0.95), key
    page = data.overview(db, config(store_url), w)
    every = [v for _, _, lats in raw.values() for v in lats]
    assert page["total"].latency_p95_ms == percentile(every, 0.95)
    for row in page["features"]:
        mine = [v for (f, _), (_, _, lats) in raw.items() if f == row["name"] for v in lats]
        assert (row["requests"], row["p95"]) == (len(mine), percentile(mine, 0.95))


def assert_budgets_equal_raw(db: Database, store_url: str) -> None:
    """Each budget's spend (complete hours from the rollup) against SQL over raw rows."""
    now = time.time()
    meters = data.budgets(db, config(store_url), now)
    assert len(meters) == 7
    for meter in meters:
        start, _ = periods.window(meter["period"], now)
        assert meter["used"] == float(spend_since(db, meter["scope"], start)), meter["scope"]
    today, _ = periods.window("day", now)
    raw = db.execute("SELECT SUM(cost_e10) AS v FROM ledger WHERE ts >= ?", (today,))
    assert data.spent_since(db, today, now).total == int(raw[0]["v"] or 0)


def rollup_rows(db: Database) -> list[tuple[Any, ...]]:
    return sorted(
        tuple(r) if db.dialect == "sqlite" else tuple(r.values())
        for r in db.execute("SELECT * FROM ledger_hourly")
    )


def late_arrivals(db: Database, now: float, traces: list[str]) -> None:
    """What a rolled hour must still take: a row stamped five hours ago (and one stamped
    three hours ahead: a client's clock), a new (flipped) outcome for an old trace, and an
    earlier call of a trace that has an outcome."""
    rng = random.Random(99)
    record(db, [ledger_row(rng, now - 5 * HOUR - 60, "late-1", "answer")])
    record(db, [ledger_row(rng, now + 3 * HOUR, "ahead-1", "extract")])
    record_outcome(db, traces[3], "success", None, None)
    record_outcome(db, traces[30], "failure", None, None)
    first = db.execute("SELECT MIN(ts) AS ts FROM ledger WHERE trace_id = ?", (traces[6],))
    record(db, [ledger_row(rng, float(first[0]["ts"]) - 3 * HOUR, traces[6], "extract")])


def exercise(db: Database, store_url: str) -> None:
    now = time.time()
    traces = traffic(db, now)
    assert_spend_equals_raw(db)  # nothing rolled yet: all raw
    assert_budgets_equal_raw(db, store_url)
    roll_up_all(db)
    state = read_state(db)
    assert state.rolled_until == hour_of(time.time()) or state.rolled_until == hour_of(now)
    assert state.ledger_upto == int(db.execute("SELECT MAX(id) AS m FROM ledger")[0]["m"])
    before = rollup_rows(db)
    assert before, "the rollup has rows"
    roll_up_all(db)
    assert rollup_rows(db) == before  # idempotent: a second run changes nothing
    # The pages now read the rollup: only the current hour (and the next) come raw.
    w = data.Window.of("30d")
    view = rolled.read(db, int(w.start // HOUR), int(w.end // HOUR), ("feature",))
    assert view.raw_hours <= 24
    assert_spend_equals_raw(db)
    assert_features_equal_raw(db, store_url)
    assert_month_by_day_equals_raw(db, store_url)
    assert_budgets_equal_raw(db, store_url)

    late_arrivals(db, now, traces)
    # Before the job has seen them: the hours they touch are read raw.
    assert_spend_equals_raw(db)
    assert_features_equal_raw(db, store_url)
    assert_month_by_day_equals_raw(db, store_url)
    assert_budgets_equal_raw(db, store_url)
    result = roll_up(db)
    assert result.written and result.hours >= 2
    # After: the rollup has them, and still equals the raw ledger.
    assert rollup_rows(db) != before
    assert_spend_equals_raw(db)
    assert_features_equal_raw(db, store_url)
    assert_month_by_day_equals_raw(db, store_url)
    assert_budgets_equal_raw(db, store_url)


def test_pages_equal_the_raw_ledger_before_and_after_late_rows(
    db: Database, store_url: str
) -> None:
    exercise(db, store_url)


def test_jobs_running_at_once_still_equal_the_raw_ledger(db: Database, store_url: str) -> None:
    """Workers or replicas each run the job: the state's compare-and-set drops the batch
    of the one that lost, so two jobs racing over small batches end exactly right."""
    now = time.time()
    traces = traffic(db, now, seed=2)
    other = Database.open(store_url, migrate=False)
    try:
        with ThreadPoolExecutor(2) as pool:
            runs = [pool.submit(roll_up_all, conn, batch=97) for conn in (db, other, db, other)]
            late_arrivals(db, now, traces)
            [run.result() for run in runs]
        roll_up_all(other)
    finally:
        other.close()
    assert read_state(db).ledger_upto == int(db.execute("SELECT MAX(id) AS m FROM ledger")[0]["m"])
    assert_spend_equals_raw(db)
    assert_features_equal_raw(db, store_url)
    assert_month_by_day_equals_raw(db, store_url)
    assert_budgets_equal_raw(db, store_url)


@pytest.mark.postgres
def test_pages_equal_the_raw_ledger_on_postgresql(postgres_url: str) -> None:
    db = Database.open(postgres_url)
    try:
        exercise(db, postgres_url)
    finally:
        db.close()


@pytest.mark.postgres
def test_a_row_committed_after_a_higher_id_is_not_lost_on_postgresql(postgres_url: str) -> None:
    """Replica A takes an id, replica B takes the next and commits first, the job rolls up,
    then A commits: its row sits below the watermark and must still be counted."""
    db = Database.open(postgres_url)
    try:
        db.execute("TRUNCATE ledger, outcomes, ledger_hourly, ledger_hourly_outcomes")
        db.execute(
            "UPDATE ledger_hourly_state SET ledger_upto = 0, outcomes_upto = 0,"
            " rolled_until = 0, gaps = '{}'"
        )
        now = time.time()
        rng = random.Random(5)
        values = [
            tuple(getattr(ledger_row(rng, now - 3 * HOUR, f"g{i}", "answer"), c) for c in COLUMNS)
            for i in range(2)
        ]
        sql = INSERT.replace("?", "%s")
        with psycopg.connect(psycopg_url(postgres_url)) as a:
            row = a.execute(sql + " RETURNING id", values[0]).fetchone()
            assert row is not None
            held = int(row[0])  # A: a lower id, not committed yet
            db.execute(INSERT, values[1])  # B: the next id, committed
            roll_up_all(db)
            assert held <= read_state(db).ledger_upto
            assert any(lo <= held <= hi for lo, hi, _ in read_state(db).gaps["ledger"])
            a.commit()
        assert_spend_equals_raw(db)  # read raw until the job has it
        roll_up_all(db)
        w = data.Window.of("24h")
        page = {r["name"]: r for r in data.spend(db, "feature", w)["table"]}
        assert page["answer"]["requests"] == 2
        gaps = read_state(db).gaps.get("ledger", [])
        assert not any(lo <= held <= hi for lo, hi, _ in gaps)  # found: no longer looked for
        assert_spend_equals_raw(db)
    finally:
        db.close()


def test_the_gateway_rolls_up_in_the_background(db: Database, gateway_factory: Any) -> None:
    now = time.time()
    traffic(db, now, seed=4)
    top = int(db.execute("SELECT MAX(id) AS m FROM ledger")[0]["m"])
    data_cfg = {
        "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"main": {"provider": "up", "model": "m"}},
        "features": {"answer": {"owner": "o", "risk_tier": "low", "route": {"targets": ["main"]}}},
    }
    with gateway_factory(data_cfg):
        deadline = time.monotonic() + 20
        while read_state(db).ledger_upto < top:
            assert time.monotonic() < deadline, "the rollup job did not run"
            time.sleep(0.1)
    assert db.execute("SELECT COUNT(*) AS n FROM ledger_hourly")[0]["n"] > 0


def test_the_p95_of_sorted_runs_is_the_nearest_rank_p95() -> None:
    """What the pages show for big windows: hours' sorted latencies, never sorted together."""
    rng = random.Random(8)
    lists = [
        [rng.lognormvariate(6, 0.5) for _ in range(50_000)],
        [float(rng.randint(1, 5)) for _ in range(40_000)],  # ties around the rank
        [1.0] * 25_000 + [9.0] * 2_000,
        [rng.random() for _ in range(100)],
    ]
    for values in lists:
        for size in (7, 300, 5_000):  # runs of an hour's calls for one group, or a day's
            runs = [sorted(values[i : i + size]) for i in range(0, len(values), size)]
            rng.shuffle(runs)
            # As the rollup's rows come back: a bucket's runs end to end in one array.
            packs = [
                Runs.of_sizes(array("d", [v for run in runs[i : i + 40] for v in run]),
                              [len(run) for run in runs[i : i + 40]])
                for i in range(0, len(runs), 40)
            ]  # fmt: skip
            for q in (0.5, 0.95, 0.99):
                assert rolled.runs_percentile(runs, q) == percentile(values, q), (size, q)
                assert rolled.runs_percentile(packs, q) == percentile(values, q), (size, q)
                mixed = [*packs[1:], *runs[:3]]  # packs and plain sorted runs together
                want = percentile([v for r in mixed for v in (r.values if isinstance(r, Runs)
                                                               else r)], q)  # fmt: skip
                assert rolled.runs_percentile(mixed, q) == want, (size, q)
    assert rolled.runs_percentile([], 0.95) is None
    assert rolled.runs_percentile([[], [3.0]], 0.95) == 3.0
