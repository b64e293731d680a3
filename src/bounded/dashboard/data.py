"""What each dashboard page shows, read from the store and the running config.

Every function takes the database and plain arguments and returns plain data (dicts,
lists); templates only format. Windows are hourly buckets over the last day or daily ones
over the last month. A table another piece of bounded fills (releases, evals, traces) may
be empty: the page then says what to run, it does not fail.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bounded.dashboard import rolled
from bounded.dashboard.charts import Series, bar_chart, line_chart, meter, sparkline
from bounded.economics.hourly import hour_of
from bounded.economics.periods import window
from bounded.economics.rules import budget_rules
from bounded.economics.spend import spend_since
from bounded.governance.signals import Signals
from bounded.store.db import Database

if TYPE_CHECKING:
    from bounded.config.schema import BoundedConfig

HOUR, DAY = 3600.0, 86400.0
E10 = 10_000_000_000
RANGES = {"24h": (DAY, HOUR), "7d": (7 * DAY, 6 * HOUR), "30d": (30 * DAY, DAY)}


@dataclass(frozen=True)
class Window:
    name: str
    start: float
    end: float
    bucket_s: float

    @property
    def bucket_name(self) -> str:
        return {3600.0: "hour", 6 * 3600.0: "6 hours", 86400.0: "day"}.get(self.bucket_s, "bucket")

    @classmethod
    def of(cls, name: str | None, now: float | None = None) -> Window:
        name = name if name in RANGES else "24h"
        span, bucket = RANGES[name]
        now = time.time() if now is None else now
        # Align buckets to the clock so an hour's bar means that hour.
        end = (now // bucket + 1) * bucket
        return cls(name, end - span, end, bucket)


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "—"
    seconds = (time.time() if now is None else now) - float(ts)
    for unit, size in (("d", DAY), ("h", HOUR), ("m", 60.0)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def usd(e10: int | float | Decimal) -> float:
    return float(e10) / E10


def _traffic_charts(series: list[tuple[float, Signals]], w: Window) -> dict[str, str]:
    ok = [(ts, float(s.requests - s.errors)) for ts, s in series]
    errors = [(ts, float(s.errors)) for ts, s in series]
    p95 = [(ts, s.latency_p95_ms) for ts, s in series]
    spend = [(ts, s.cost_usd) for ts, s in series]
    common: dict[str, Any] = {"start": w.start, "end": w.end}
    return {
        "traffic": bar_chart(
            [Series("answered", ok, "#2563eb"), Series("errors", errors, "#dc2626")],
            unit="requests", label="Requests per bucket", bucket_s=w.bucket_s, **common,
        ),
        "latency": line_chart(
            [Series("p95 latency", p95, "#7c3aed")], unit="ms", label="p95 latency", **common
        ),
        "spend": bar_chart(
            [Series("spend", spend, "#059669")], unit="USD", label="Spend", bucket_s=w.bucket_s,
            **common,
        ),
    }  # fmt: skip


def overview(db: Database, config: BoundedConfig, w: Window) -> dict[str, Any]:
    cells = rolled.grid(db, w.start, w.end, w.bucket_s)
    series = rolled.over_time(cells, w.start, w.end, w.bucket_s)
    total = rolled.RolledSignals()
    for _, s in series:
        rolled.add(total, s)
    per_feature = rolled.by_feature(cells)
    features = [
        {
            "name": name,
            "owner": config.features[name].owner if name in config.features else "—",
            "requests": s.requests,
            "error_rate": s.error_rate,
            "p95": s.latency_p95_ms,
            "cost": s.cost_usd,
            "cps": s.cost_per_success_usd,
        }
        for name, s in sorted(per_feature.items(), key=lambda kv: -kv[1].requests)
    ]
    now = time.time()
    today_start, _ = window("day", now)
    spent = {today_start: spent_since(db, today_start, now)}  # day budgets read it too
    return {
        "total": total,
        "charts": _traffic_charts(series, w),
        "features": features,
        "budgets": budgets(db, config, now, spent),
        "spend_today": usd(spent[today_start].total),
        "open_incidents": _sum(db, "SELECT COUNT(*) AS v FROM incidents WHERE status = 'open'"),
        "alerts": db.execute(
            "SELECT * FROM drift_alerts WHERE ts >= ? ORDER BY ts DESC LIMIT 8", (w.start,)
        ),
    }  # fmt: skip


def _sum(db: Database, sql: str, params: tuple[Any, ...] = ()) -> int:
    rows = db.execute(sql, params)
    return int(rows[0]["v"] or 0) if rows else 0


def budgets(
    db: Database, config: BoundedConfig, now: float | None = None,
    spent: dict[float, Spent] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every budget against its period's spend; ``spent``: what is known per period start
    (at ``now``), filled in here."""
    rules = []
    for name, feature in config.features.items():
        rules += budget_rules(f"feature:{name}", feature.budget)
    for name, team in config.teams.items():
        rules += budget_rules(f"team:{name}", team.budget)
    now = time.time() if now is None else now
    spent = {} if spent is None else spent
    out = []
    for rule in rules:
        start, resets = window(rule.period, now)
        if start not in spent:
            spent[start] = spent_since(db, start, now)
        scopes = spent[start].scopes
        if scopes is None:
            used = float(spend_since(db, rule.scope, start))  # off the hour: raw rows
        else:
            used = float(Decimal(scopes.get(rule.scope, 0)) / E10)  # as spend_since gives it
        limit = float(rule.amount)
        out.append(
            {
                "scope": rule.scope,
                "period": rule.period,
                "mode": rule.mode,
                "used": used,
                "limit": limit,
                "share": used / limit if limit else 0.0,
                "meter": meter(used, limit),
                "resets": resets,
            }
        )
    return sorted(out, key=lambda b: -b["share"])


@dataclass
class Spent:
    """Spend (1e-10 USD) of the ledger rows since a time: all of them, and per budget scope
    (``feature:name``, ``team:name``; None: not summed per scope)."""

    total: int
    scopes: dict[str, int] | None


def spent_since(db: Database, start: float, now: float) -> Spent:
    """What SQL over the raw rows at or after ``start`` sums, with the complete hours read
    from the rollup: a month's budget (or a ``total`` one) is otherwise a sum over every row
    of the month, per budget, on every view of the overview. A ``start`` off the hour (no
    calendar period's is) is summed raw, in total only."""
    if start % HOUR:
        return Spent(_sum(db, "SELECT SUM(cost_e10) AS v FROM ledger WHERE ts >= ?", (start,)),
                     None)  # fmt: skip
    first, end = int(start // HOUR), hour_of(now) + 2  # to the end of the next hour
    view = rolled.read(db, first, end, ("feature", "team"), bucket_hours=end - first, now=now)
    cells = [(k[1], k[2], c.cost_e10) for k, c in view.cells.items()]
    # Rows stamped later than that (a client's clock ahead), which the range left out. On
    # SQLite, ``+`` keeps the planner on ix_ledger_ts: grouping by the columns made it walk
    # all of ix_ledger_feature_ts instead (80 ms at 1M rows, for no row at all).
    plus = "+" if db.dialect == "sqlite" else ""
    cells += [
        (r["feature"], r["team"], int(r["v"] or 0))
        for r in db.execute(
            "SELECT feature, team, SUM(cost_e10) AS v FROM ledger WHERE ts >= ?"
            f" GROUP BY {plus}feature, {plus}team",
            (end * HOUR,),
        )
    ]
    scopes: dict[str, int] = {}
    for feature, team, cost in cells:
        for kind, name in (("feature", feature), ("team", team)):
            if name is not None:
                scopes[f"{kind}:{name}"] = scopes.get(f"{kind}:{name}", 0) + cost
    return Spent(sum(cost for _, _, cost in cells), scopes)


SPEND_GROUPS = {"feature": "feature", "team": "team", "model": "deployment"}


def spend(db: Database, by: str, w: Window) -> dict[str, Any]:
    column = SPEND_GROUPS.get(by, "feature")
    # Complete hours from the rollup, the rest from raw rows (see dashboard.rolled).
    first, end = int(w.start // rolled.HOUR), -(-int(w.end) // rolled.HOUR)
    view = rolled.read(db, first, end, (column,), dim=column,
                       bucket_hours=rolled.bucket_hours(w.start, w.bucket_s))  # fmt: skip
    groups: dict[str, dict[str, Any]] = {}
    for (hour, grp), cell in view.cells.items():
        g = groups.setdefault(grp or "—", _group())
        # Exact integers per bucket (1e-10 USD), dollars only once summed.
        g["cost"][int((hour * rolled.HOUR - w.start) // w.bucket_s)] += cell.cost_e10
        g["requests"] += cell.requests
        g["errors"] += cell.errors
        g["tokens"] += cell.input_tokens + cell.output_tokens
    # An outcome counts once per trace and group, in the bucket of the trace's first call
    # in that group, with the trace's latest outcome.
    for (hour, grp), (won, lost) in view.wins.items():
        g = groups.setdefault(grp or "—", _group())
        g["wins"][int((hour * rolled.HOUR - w.start) // w.bucket_s)] += won
        g["judged"] += won + lost
    buckets = round((w.end - w.start) / w.bucket_s)
    ranked = sorted(groups.items(), key=lambda kv: -sum(kv[1]["cost"].values()))
    times = [w.start + i * w.bucket_s for i in range(buckets)]
    cost_series: list[Series] = []
    cps_series: list[Series] = []
    table: list[dict[str, Any]] = []
    for name, g in ranked:
        cost = [usd(g["cost"].get(i, 0)) for i in range(buckets)]
        wins_by = [g["wins"].get(i, 0) for i in range(buckets)]
        total, won = sum(cost), sum(wins_by)
        table.append(
            {
                "name": name,
                "requests": g["requests"],
                "errors": g["errors"],
                "tokens": g["tokens"],
                "cost": total,
                "successes": won,
                "judged": g["judged"],
                "cps": total / won if won else None,
                "trend": sparkline([c or None for c in cost]),
            }
        )
        if len(cost_series) < 6:
            cost_series.append(Series(name, list(zip(times, cost, strict=True))))
            cps_series.append(
                Series(
                    name,
                    [
                        (t, c / n if n else None)
                        for t, c, n in zip(times, cost, wins_by, strict=True)
                    ],
                )
            )
    common: dict[str, Any] = {"start": w.start, "end": w.end}
    return {
        "by": by if by in SPEND_GROUPS else "feature",
        "table": table,
        "cost_chart": bar_chart(cost_series, unit="USD", label="Spend", bucket_s=w.bucket_s,
                                **common),
        "cps_chart": line_chart(cps_series, unit="USD", label="Cost per successful outcome",
                                **common),
        "total": sum(t["cost"] for t in table),
    }  # fmt: skip


def _group() -> dict[str, Any]:
    from collections import defaultdict

    return {"cost": defaultdict(int), "wins": defaultdict(int), "requests": 0, "errors": 0,
            "tokens": 0, "judged": 0}  # fmt: skip


def deployments(db: Database, config: BoundedConfig, breakers: dict[str, Any], w: Window) -> list[
    dict[str, Any]
]:  # fmt: skip
    rows = {
        r["deployment"]: r
        for r in db.execute(
            "SELECT deployment, COUNT(*) AS n, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)"
            " AS errors, AVG(latency_ms) AS lat, SUM(cost_e10) AS cost, MAX(ts) AS last"
            " FROM ledger WHERE ts >= ? AND ts < ? GROUP BY deployment",
            (w.start, w.end),
        )
    }
    used_by: dict[str, list[str]] = {}
    for name, feature in config.features.items():
        for target in feature.route.targets:
            used_by.setdefault(target, []).append(name)
    out = []
    for name, model in config.models.items():
        r = rows.get(name)
        breaker = breakers.get(name, {})
        out.append(
            {
                "name": name,
                "provider": model.provider,
                "model": model.model,
                "kind": model.kind,
                "state": breaker.get("state", "closed"),
                "failure_rate": breaker.get("failure_rate", 0.0),
                "calls": breaker.get("calls", 0),
                "requests": int(r["n"]) if r else 0,
                "errors": int(r["errors"] or 0) if r else 0,
                "latency": float(r["lat"]) if r and r["lat"] is not None else None,
                "cost": usd(r["cost"] or 0) if r else 0.0,
                "last": float(r["last"]) if r and r["last"] else None,
                "features": used_by.get(name, []),
            }
        )
    return out


def decode(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
