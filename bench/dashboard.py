"""How long the dashboard's pages take on the server with a big store.

    .venv/bin/python bench/dashboard.py [--rows 1000000] [--traces 100000] [--days 30] [--n 5]

Fills a SQLite store once (kept in build/bench-dashboard/, reused while the sizes match):
``--rows`` ledger rows spread over ``--days`` days across 8 features, 4 teams and 5
deployments, an outcome for every tenth request, and ``--traces`` requests' traces of 12
spans each (the root, ten nested stages, one upstream attempt), written by the gateway's
own ``TraceWriter``: one ``traces`` row per request with its spans in ``spans_json``, as
stored since migration 0008 (a store filled by an older copy of this file, spans in the old
``spans`` table, sits in a folder of another name and is not reused). Then rolls the ledger
up from scratch (the gateway's background job, run here in process; its time is printed),
renders each page through the dashboard's own routes (in process, a signed-in session; HTML
out) ``--n`` times and prints the median and the worst in ms; then adds late arrivals (1,000
rows stamped in hours already rolled up, 1,000 in the current hour, 100 new outcomes for old
traces), renders the rollup-backed pages again before the job has seen them (those hours are
read raw), times the job's incremental run, and takes the late arrivals out again. ``--raw``
renders every page with an empty rollup instead (what a page costs until the job has caught
up). Target (issue 12): every page under 300 ms server-side; figures in docs/dashboard.md
("Measured"). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

FEATURES = [f"feature-{i}" for i in range(8)]
TEAMS = ["support", "finance", "growth", "platform"]
DEPLOYMENTS = ["gpt-4o-mini", "gpt-4o", "claude-haiku", "smollm2", "backup"]
FOLDER = Path(__file__).parents[1] / "build" / "bench-dashboard"


def config() -> dict[str, Any]:
    return {
        "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {d: {"provider": "up", "model": d} for d in DEPLOYMENTS},
        "features": {
            f: {
                "owner": TEAMS[i % 4],
                "team": TEAMS[i % 4],
                "risk_tier": ("low", "medium", "high")[i % 3],
                "route": {"targets": DEPLOYMENTS[: 1 + i % 3]},
                "eval": {"min_pass_rate": 0.9},
                "budget": {"amount_usd": 100, "period": "day"},
            }
            for i, f in enumerate(FEATURES)
        },
    }


def fill(url: str, traces_url: str, rows: int, traces: int, days: int) -> None:
    from bounded.economics.ledger import COLUMNS
    from bounded.store.db import Database

    db = Database.open(url)
    rng = random.Random(7)
    now = time.time()
    span = days * 86400.0
    insert = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    batch: list[tuple[Any, ...]] = []
    outcomes: list[tuple[Any, ...]] = []
    for i in range(rows):
        ts = now - span * (i / rows)
        feature = rng.choice(FEATURES)
        failed = rng.random() < 0.03
        trace = f"{i:032x}"
        values = {
            "ts": ts, "trace_id": trace, "session_id": None, "key_id": "k1",
            "team": TEAMS[FEATURES.index(feature) % 4], "feature": feature, "arm": "stable",
            "provider": "up", "deployment": rng.choice(DEPLOYMENTS), "model": "m",
            "input_tokens": rng.randint(50, 2000), "output_tokens": rng.randint(10, 400),
            "cached_tokens": 0, "reasoning_tokens": 0, "cost_e10": rng.randint(10**5, 10**7),
            "usage_source": "provider", "latency_ms": rng.lognormvariate(6, 0.5),
            "ttft_ms": None, "status": 502 if failed else 200,
            "error_class": "unavailable" if failed else None, "attempts": 1, "stream": False,
            "operation": "chat", "flags": None,
            "validation": "failed" if rng.random() < 0.02 else "passed",
            "groundedness": None, "baseline_cost_e10": None,
        }  # fmt: skip
        batch.append(tuple(values.get(c) for c in COLUMNS))
        if i % 10 == 0:
            outcomes.append((ts + 1, trace, "success" if rng.random() < 0.8 else "failure"))
        if len(batch) >= 50_000:
            with db.transaction():
                db.executemany(insert, batch)
            batch.clear()
    with db.transaction():
        db.executemany(insert, batch)
        db.executemany("INSERT INTO outcomes (ts, trace_id, outcome) VALUES (?, ?, ?)", outcomes)
    db.close()
    write_traces(traces_url, traces, now, span)


STAGES = ("auth", "body", "resolve", "prompt", "guard_input", "context", "validate", "settle",
          "admit", "route")  # fmt: skip


def write_traces(traces_url: str, traces: int, now: float, span: float) -> None:
    """``traces`` requests of 12 spans each (the root, ten nested stages, one upstream
    attempt), through the gateway's own trace writer: one ``traces`` row per request with
    its spans in ``spans_json``, encoded as the gateway encodes them."""
    from bounded.telemetry.store import TraceWriter

    writer = TraceWriter(traces_url)
    try:
        for i in range(traces):
            writer.put(trace_record(i, now - span * (i / traces)))
            if i % 10_000 == 9_999:  # the writer's queue holds 20,000: drain it on the way
                assert writer.flush(timeout=300), "trace writer fell behind"
        assert writer.flush(timeout=300), "trace writer fell behind"
        assert writer.dropped == 0, f"{writer.dropped} traces dropped"
    finally:
        writer.close()


def trace_record(i: int, ts: float) -> Any:
    from bounded.telemetry.spans import Span
    from bounded.telemetry.store import TraceRecord

    feature, deployment = FEATURES[i % 8], DEPLOYMENTS[i % 5]
    failed = i % 31 == 0
    t0 = int(ts * 1e9)
    ids = (f"{i:012x}{s:04x}" for s in range(12))
    root = Span(next(ids), None, "chat " + feature, t0, t0 + 40_000_000, kind="server")
    root.status = "error" if failed else "ok"
    root.attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": feature,
        "bounded.feature": feature, "bounded.team": "support", "bounded.arm": "stable",
        "bounded.deployment": deployment, "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20, "http.response.status_code": 502 if failed else 200,
    }  # fmt: skip
    spans, parent, start = [root], root, t0 + 20_000
    for n, name in enumerate(STAGES):
        stage = Span(next(ids), parent.span_id, name, start, t0 + 39_900_000 - n * 9_000)
        stage.attributes = {"bounded.stage": name}
        spans.append(stage)
        parent, start = stage, start + 30_000
    attempt = Span(next(ids), parent.span_id, "chat " + deployment, start + 5_000,
                   t0 + 39_000_000, kind="client")  # fmt: skip
    attempt.attributes = {"gen_ai.operation.name": "chat", "bounded.deployment": deployment}
    spans.append(attempt)
    return TraceRecord(
        trace_id=f"{i:032x}", root=root, spans=spans, feature=feature, team="support",
        model="m", deployment=deployment, arm="stable", http_status=502 if failed else 200,
        error_class="unavailable" if failed else None, input_tokens=100, output_tokens=20,
        cost_e10=10**6,
    )  # fmt: skip


def traces_url_of(url: str) -> str:
    try:
        from bounded.telemetry.store import trace_store_url  # traces in a file of their own
    except ImportError:
        return url
    return str(trace_store_url(url))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--raw", action="store_true", help="pages with an empty rollup")
    args = parser.parse_args()

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from bounded.config.loader import parse_config
    from bounded.dashboard.pages import Dashboard
    from bounded.dashboard.session import COOKIE
    from bounded.economics.rollup import roll_up_all
    from bounded.gateway.runtime import Runtime
    from bounded.store.db import Database

    # "-json": traces as the writer has stored them since migration 0008 (an older folder had
    # them in the spans table)
    folder = FOLDER / f"{args.rows}-{args.traces}-{args.days}-json"
    url = f"sqlite:///{folder / 'bounded.db'}"
    traces_url = traces_url_of(url)
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.db*"):
            old.unlink()
        started = time.perf_counter()
        fill(url, traces_url, args.rows, args.traces, args.days)
        (folder / "done").write_text("")
        print(f"filled in {time.perf_counter() - started:.0f} s: {folder}")
    cfg = parse_config(yaml.safe_dump({**config(), "server": {"store": url}}), env={})
    runtime = Runtime.build(cfg)
    db = Database.open(url)  # a store filled by an older bounded gets the rollup's tables
    reset_rollup(db)
    backfill_s = None
    if not args.raw:
        started = time.perf_counter()
        hours = roll_up_all(db)
        backfill_s = time.perf_counter() - started
        print(f"rollup from scratch: {hours} hours in {backfill_s:.1f} s")
    dashboard = Dashboard(
        db, runtime=lambda: runtime, authenticate=lambda *_: None,  # type: ignore[arg-type,return-value]
        admin_key="bench", traces_url=traces_url,
    )  # fmt: skip
    client = TestClient(Starlette(routes=[dashboard.mount()]))
    client.cookies.set(COOKIE, dashboard.sessions.issue("admin"))
    pages = {
        "overview": "/ui/",
        "trace search (feature, 24h)": "/ui/traces?feature=feature-3",
        "trace search (errors, 7d)": "/ui/traces?status=error&range=7d",
        "trace search (id prefix)": "/ui/traces?q=00000000000000000000000000001&range=30d",
        "trace waterfall": f"/ui/traces/{1234:032x}",
        "spend (30d, by feature)": "/ui/spend?by=feature&range=30d",
        "features (24h)": "/ui/features",
        "feature detail (24h)": "/ui/features/feature-2",
        "deployments (24h)": "/ui/deployments",
        "spend (7d, by model)": "/ui/spend?by=model&range=7d",
        "overview (30d)": "/ui/?range=30d",
        "releases": "/ui/releases",
        "evals": "/ui/evals",
        "incidents": "/ui/incidents",
        "audit log": "/ui/audit",
    }
    mode = "empty rollup (raw rows)" if args.raw else "rollup"
    print(
        f"{args.rows:,} ledger rows over {args.days} days, {args.traces:,} traces, SQLite, {mode}"
    )
    results = measure(client, pages, args.n)
    report: dict[str, Any] = {"rows": args.rows, "traces": args.traces, "raw": args.raw,
                              "rollup_backfill_s": backfill_s, "pages": results}  # fmt: skip
    if not args.raw:
        top = late_arrivals(db, args.rows)
        print("with late arrivals the job has not seen yet:")
        rolled_pages = {k: v for k, v in pages.items() if k.split(" ")[0] in ROLLED}
        report["pages_with_late_arrivals"] = measure(client, rolled_pages, args.n)
        started = time.perf_counter()
        roll_up_all(db)
        report["rollup_incremental_s"] = time.perf_counter() - started
        print(f"rollup of the late arrivals: {report['rollup_incremental_s'] * 1000:.0f} ms")
        db.execute("DELETE FROM ledger WHERE id > ?", (top[0],))
        db.execute("DELETE FROM outcomes WHERE id > ?", (top[1],))
    reset_rollup(db)  # the store is reused: the next run rolls up from scratch again
    print(json.dumps(report))


ROLLED = ("overview", "spend", "features")


def measure(client: Any, pages: dict[str, str], n: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, path in pages.items():
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        results[name] = {"median_ms": statistics.median(times), "max_ms": max(times)}
        print(f"  {name:32s} median {statistics.median(times):7.1f} ms   max {max(times):7.1f} ms")
    return results


def reset_rollup(db: Any) -> None:
    with db.transaction():
        db.execute("DELETE FROM ledger_hourly")
        db.execute("DELETE FROM ledger_hourly_outcomes")
        db.execute(
            "UPDATE ledger_hourly_state SET version = version + 1, ledger_upto = 0,"
            " outcomes_upto = 0, rolled_until = 0, gaps = '{}'"
        )


def late_arrivals(db: Any, rows: int) -> tuple[int, int]:
    """Rows and outcomes the rollup has not seen; the ids they come after."""
    from bounded.economics.ledger import COLUMNS

    top = (
        int(db.execute("SELECT MAX(id) AS m FROM ledger")[0]["m"]),
        int(db.execute("SELECT COALESCE(MAX(id), 0) AS m FROM outcomes")[0]["m"]),
    )
    rng = random.Random(11)
    now = time.time()
    template = dict(db.execute("SELECT * FROM ledger WHERE id = ?", (top[0],))[0])
    template.pop("id")
    late = []
    for i in range(2000):
        ts = now - rng.uniform(3600, 29 * 86400) if i < 1000 else now - rng.uniform(0, 60)
        late.append(tuple({**template, "ts": ts, "trace_id": f"late{i:028x}"}[c] for c in COLUMNS))
    insert = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    outcomes = [(now, f"{rng.randrange(rows):032x}", "success") for _ in range(100)]
    with db.transaction():
        db.executemany(insert, late)
        db.executemany("INSERT INTO outcomes (ts, trace_id, outcome) VALUES (?, ?, ?)", outcomes)
    return top


if __name__ == "__main__":
    main()
