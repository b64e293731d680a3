"""Health signals per feature, read from the ledger (and outcomes) over a window.

    by_feature = feature_signals(db, since, until)                 # {feature: Signals}
    series = signal_series(db, "support-answer", since, until, 3600)  # [(bucket, Signals)]

Each request's row already carries what the signals need (validation verdict, error
class, output tokens, groundedness, cost, latency), so no extra write happens on the
request path. Rates are per request of the feature; answer length and groundedness
average the answered requests; p95 latency is exact (the window's latencies are read,
sorted per feature: a day is tens of thousands of floats, not a scan worth avoiding).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from bounded.store.db import Database

E10 = 10_000_000_000


@dataclass
class Signals:
    requests: int = 0
    errors: int = 0
    validated: int = 0
    validation_failed: int = 0
    refusals: int = 0
    answered: int = 0
    output_tokens: int = 0
    grounded: int = 0
    groundedness_sum: float = 0.0
    successes: int = 0
    failures: int = 0
    cost_e10: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def validation_failure_rate(self) -> float | None:
        return self.validation_failed / self.validated if self.validated else None

    @property
    def refusal_rate(self) -> float | None:
        return self.refusals / self.requests if self.requests else None

    @property
    def answer_tokens(self) -> float | None:
        return self.output_tokens / self.answered if self.answered else None

    @property
    def groundedness(self) -> float | None:
        return self.groundedness_sum / self.grounded if self.grounded else None

    @property
    def outcome_success_rate(self) -> float | None:
        judged = self.successes + self.failures
        return self.successes / judged if judged else None

    @property
    def cost_usd(self) -> float:
        return self.cost_e10 / E10

    @property
    def cost_per_success_usd(self) -> float | None:
        return self.cost_usd / self.successes if self.successes else None

    @property
    def latency_p95_ms(self) -> float | None:
        return percentile(self.latencies, 0.95)

    def value(self, signal: str) -> float | None:
        result = getattr(self, signal)
        return None if result is None else float(result)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (what a reader checks by hand)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


_AGGREGATE = (
    "SELECT feature, {bucket} AS b, COUNT(*) AS n,"
    " SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,"
    " SUM(CASE WHEN validation IS NOT NULL THEN 1 ELSE 0 END) AS validated,"
    " SUM(CASE WHEN validation = 'failed' THEN 1 ELSE 0 END) AS vfailed,"
    " SUM(CASE WHEN error_class = 'content_refused' THEN 1 ELSE 0 END) AS refusals,"
    " SUM(CASE WHEN status < 400 THEN 1 ELSE 0 END) AS answered,"
    " SUM(CASE WHEN status < 400 THEN output_tokens ELSE 0 END) AS tout,"
    " SUM(CASE WHEN groundedness IS NOT NULL THEN 1 ELSE 0 END) AS grounded,"
    " SUM(groundedness) AS gsum, SUM(cost_e10) AS cost, {latencies} AS lats"
    " FROM ledger WHERE ts >= ? AND ts < ? AND operation = 'chat'{where}"
    " GROUP BY feature, b"
)


def bucket_sql(dialect: str, bucket_s: float | None, since: float, column: str = "ts") -> str:
    if bucket_s is None:
        return "0"
    # Rows are at or after ``since``: SQLite's cast truncates, which is the floor here;
    # PostgreSQL's rounds, so it floors first (SQLite may lack FLOOR).
    expr = f"({column} - {float(since)}) / {float(bucket_s)}"
    return (
        f"CAST(FLOOR({expr}) AS INTEGER)" if dialect == "postgresql" else f"CAST({expr} AS INTEGER)"
    )


def _collect(
    db: Database, since: float, until: float, bucket_s: float | None, feature: str | None
) -> dict[tuple[str, int], Signals]:
    where = ""
    params: list[object] = [since, until]
    if feature is not None:
        where = " AND feature = ?"
        params.append(feature)
    bucket = bucket_sql(db.dialect, bucket_s, since)
    cbucket = bucket_sql(db.dialect, bucket_s, since, "c.ts")
    out: dict[tuple[str, int], Signals] = defaultdict(Signals)
    # The latencies come along as one text per group: a fifth of the cost of a row each.
    latencies = (
        "string_agg(CAST(latency_ms AS TEXT), ',')"
        if db.dialect == "postgresql"
        else "GROUP_CONCAT(latency_ms)"
    )
    sql = _AGGREGATE.format(bucket=bucket, where=where, latencies=latencies)
    for r in db.execute(sql, params):
        s = out[(r["feature"] or "-", int(r["b"]))]
        s.requests, s.errors = int(r["n"]), int(r["errors"] or 0)
        s.validated, s.validation_failed = int(r["validated"] or 0), int(r["vfailed"] or 0)
        s.refusals, s.answered = int(r["refusals"] or 0), int(r["answered"] or 0)
        s.output_tokens, s.grounded = int(r["tout"] or 0), int(r["grounded"] or 0)
        s.groundedness_sum, s.cost_e10 = float(r["gsum"] or 0), int(r["cost"] or 0)
        s.latencies = [float(v) for v in r["lats"].split(",")] if r["lats"] else []
    # Outcomes: the latest per trace id, on the call with that trace id. Picked here rather
    # than by a correlated MAX() per row, which cost ~5x the join itself on a day of traffic.
    latest: dict[tuple[str, str, int], tuple[int, str]] = {}
    for r in db.execute(
        f"SELECT c.feature AS feature, {cbucket} AS b, o.id AS oid, o.trace_id AS t,"
        " o.outcome AS outcome FROM ledger c JOIN outcomes o ON o.trace_id = c.trace_id"
        " WHERE c.ts >= ? AND c.ts < ?" + (" AND c.feature = ?" if feature is not None else ""),
        params,
    ):
        key = (str(r["t"]), r["feature"] or "-", int(r["b"]))
        if key not in latest or int(r["oid"]) > latest[key][0]:
            latest[key] = (int(r["oid"]), str(r["outcome"]))
    for (_, name, b), (_, outcome) in latest.items():
        s = out[(name, b)]
        if outcome == "success":
            s.successes += 1
        else:
            s.failures += 1
    return out


def grid(
    db: Database, since: float, until: float, bucket_s: float, feature: str | None = None
) -> dict[tuple[str, int], Signals]:
    """Signals per (feature, bucket) in one pass: both views below come from it."""
    return _collect(db, since, until, bucket_s, feature)


def by_feature(cells: dict[tuple[str, int], Signals]) -> dict[str, Signals]:
    out: dict[str, Signals] = {}
    for (name, _), s in cells.items():
        out[name] = _merge(out[name], s) if name in out else s
    return out


def over_time(
    cells: dict[tuple[str, int], Signals], since: float, until: float, bucket_s: float
) -> list[tuple[float, Signals]]:
    count = max(1, math.ceil((until - since) / bucket_s))
    merged = [Signals() for _ in range(count)]
    for (_, b), s in cells.items():
        if 0 <= b < count:
            merged[b] = _merge(merged[b], s)
    return [(since + i * bucket_s, s) for i, s in enumerate(merged)]


def feature_signals(
    db: Database, since: float, until: float, feature: str | None = None
) -> dict[str, Signals]:
    return {name: s for (name, _), s in _collect(db, since, until, None, feature).items()}


def signal_series(
    db: Database, feature: str | None, since: float, until: float, bucket_s: float
) -> list[tuple[float, Signals]]:
    """One Signals per bucket from ``since`` (empty buckets included), all features merged
    when ``feature`` is None."""
    return over_time(_collect(db, since, until, bucket_s, feature), since, until, bucket_s)


def _merge(a: Signals, b: Signals) -> Signals:
    if not a.requests and not a.successes and not a.failures:
        return b
    merged = Signals()
    for name in Signals.__dataclass_fields__:
        if name == "latencies":
            merged.latencies = a.latencies + b.latencies
        else:
            setattr(merged, name, getattr(a, name) + getattr(b, name))
    return merged
