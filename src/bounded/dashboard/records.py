"""Pages over rows other pieces write: features' health, releases, eval runs, traces,
incidents and the audit log. Each reads its table; an empty one gives an empty list."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bounded.dashboard import rolled
from bounded.dashboard.charts import Series, line_chart, sparkline
from bounded.dashboard.data import Window, decode, usd
from bounded.governance.alerts import ResolvedBand, bands
from bounded.governance.incidents import Incidents
from bounded.governance.settings import SIGNALS
from bounded.governance.signals import signal_series
from bounded.governance.tiers import feature_issues
from bounded.store.db import Database
from bounded.telemetry.store import SUMMARY, TraceRepository

if TYPE_CHECKING:
    from bounded.config.schema import BoundedConfig

SIGNAL_UNITS = {
    "validation_failure_rate": ("Validation failures", "%"),
    "refusal_rate": ("Refusals", "%"),
    "error_rate": ("Errors", "%"),
    "answer_tokens": ("Answer length", "tokens"),
    "groundedness": ("Groundedness", ""),
    "outcome_success_rate": ("Outcome success", "%"),
    "cost_per_success_usd": ("Cost per success", "USD"),
    "latency_p95_ms": ("p95 latency", "ms"),
}


def features(db: Database, config: BoundedConfig, w: Window) -> list[dict[str, Any]]:
    now = time.time()
    # This window's signals and the baseline their bands are learned from come from the
    # hourly rollup (raw rows only for hours it does not cover yet): reading a week of
    # every feature's rows is what made this page take seconds on a big ledger.
    cells = rolled.grid(db, w.start, w.end, w.bucket_s)
    current = rolled.by_feature(cells)
    series_by = {
        name: rolled.over_time({k: v for k, v in cells.items() if k[0] == name}, w.start,
                               w.end, w.bucket_s)
        for name in config.features
    }  # fmt: skip
    hours = rolled.baseline_hours(db, config.alerts, now)
    open_by: dict[str, int] = {}
    for row in db.execute(
        "SELECT feature, COUNT(*) AS n FROM incidents WHERE status = 'open' GROUP BY feature"
    ):
        open_by[row["feature"]] = int(row["n"])
    alerts_by: dict[str, int] = {}
    for row in db.execute(
        "SELECT feature, COUNT(*) AS n FROM drift_alerts WHERE ts >= ? GROUP BY feature",
        (w.start,),
    ):
        alerts_by[row["feature"]] = int(row["n"])
    out = []
    for name, feature in config.features.items():
        s = current.get(name)
        resolved = bands(db, name, feature, config.alerts, now, hours)
        out_of_band = [
            sig
            for sig, band in resolved.items()
            if s is not None and (v := s.value(sig)) is not None and not band.contains(v)
        ]
        gaps = feature_issues(name, feature)
        health = (
            "no traffic"
            if s is None
            else "drifting"
            if out_of_band
            else "missing controls"
            if gaps
            else "healthy"
        )
        out.append(
            {
                "name": name,
                "owner": feature.owner,
                "team": feature.team,
                "tier": feature.risk_tier,
                "description": feature.description,
                "signals": s,
                "health": health,
                "out_of_band": out_of_band,
                "gaps": gaps,
                "open_incidents": open_by.get(name, 0),
                "alerts": alerts_by.get(name, 0),
                "trend": sparkline([x.latency_p95_ms for _, x in series_by[name]]),
            }
        )
    return out


def feature_detail(db: Database, config: BoundedConfig, name: str, w: Window) -> dict[str, Any]:
    feature = config.features[name]
    series = signal_series(db, name, w.start, w.end, w.bucket_s)
    resolved = bands(db, name, feature, config.alerts, time.time())
    charts = []
    for signal in SIGNALS:
        title, unit = SIGNAL_UNITS[signal]
        points = [(ts, s.value(signal)) for ts, s in series]
        lines = [Series(title, points, "#2563eb")]
        band = resolved.get(signal)
        if band is not None:
            lines += _band_lines(band, w)
        charts.append(
            {
                "signal": signal,
                "title": title,
                "band": band,
                "svg": line_chart(
                    lines, unit=unit, label=title, start=w.start, end=w.end, width=420
                ),
            }
        )
    return {
        "name": name,
        "feature": feature,
        "charts": charts,
        "gaps": feature_issues(name, feature),
        "alerts": db.execute(
            "SELECT * FROM drift_alerts WHERE feature = ? ORDER BY ts DESC LIMIT 20", (name,)
        ),
        "incidents": Incidents(db).list(feature=name, limit=20),
    }


def _band_lines(band: ResolvedBand, w: Window) -> list[Series]:
    edges = []
    for label, value in (("band min", band.low), ("band max", band.high)):
        if value is not None and value >= 0:
            edges.append(Series(f"{label} ({band.source})", [(w.start, value), (w.end, value)],
                                "#9ca3af"))  # fmt: skip
    return edges


_ARMS = (
    "SELECT arm, COUNT(*) AS n, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,"
    " AVG(latency_ms) AS lat, SUM(cost_e10) AS cost,"
    " SUM(CASE WHEN validation = 'failed' THEN 1 ELSE 0 END) AS vfail FROM ledger"
)


def releases(db: Database) -> list[dict[str, Any]]:
    rows = db.execute("SELECT * FROM releases ORDER BY started_at DESC LIMIT 100")
    out = []
    for r in rows:
        arms = db.execute(_ARMS + " WHERE release_id = ? GROUP BY arm ORDER BY arm", (r["id"],))
        if not arms:
            # Rows written before ledger rows carried their release: the feature's traffic
            # while the release ran, by arm.
            arms = db.execute(
                _ARMS + " WHERE feature = ? AND ts >= ? AND ts <= ? GROUP BY arm ORDER BY arm",
                (r["feature"], r["started_at"], r["ended_at"] or time.time()),
            )
        out.append(
            {
                "row": r,
                "decision": decode(r["decision"]),
                "arms": [
                    {
                        "arm": a["arm"],
                        "requests": int(a["n"]),
                        "error_rate": int(a["errors"] or 0) / int(a["n"]) if a["n"] else None,
                        "latency": a["lat"],
                        "cost": usd(a["cost"] or 0),
                        "validation_failures": int(a["vfail"] or 0),
                    }
                    for a in arms
                ],
            }
        )
    return out


def eval_runs(db: Database, feature: str | None = None) -> list[Any]:
    if feature:
        return db.execute(
            "SELECT * FROM eval_runs WHERE feature = ? ORDER BY created_at DESC LIMIT 200",
            (feature,),
        )
    return db.execute("SELECT * FROM eval_runs ORDER BY created_at DESC LIMIT 200")


def eval_run(db: Database, run_id: str) -> dict[str, Any] | None:
    rows = db.execute("SELECT * FROM eval_runs WHERE id = ?", (run_id,))
    if not rows:
        return None
    cases = []
    for c in db.execute("SELECT * FROM eval_cases WHERE run_id = ? ORDER BY idx", (run_id,)):
        result = decode(c["result"]) or {}
        grading = result.get("gradingResult") if isinstance(result, dict) else None
        cases.append(
            {
                "key": c["case_key"],
                "passed": bool(c["passed"]),
                "score": c["score"],
                "vars": result.get("vars") if isinstance(result, dict) else None,
                "output": _output_text(result),
                "reason": (grading or {}).get("reason") if isinstance(grading, dict) else None,
                "components": (grading or {}).get("componentResults", [])
                if isinstance(grading, dict)
                else [],
            }
        )
    return {"run": rows[0], "summary": decode(rows[0]["summary"]), "cases": cases}


def _output_text(result: Any) -> str:
    if not isinstance(result, dict):
        return ""
    response = result.get("response")
    if isinstance(response, dict):
        return str(response.get("output", ""))
    return str(result.get("output", ""))


def trace_search(
    db: Database,
    *,
    feature: str | None,
    status: str | None,
    q: str | None,
    w: Window,
    limit: int = 100,
) -> list[Any]:
    where = ["ts >= ?", "ts < ?"]
    params: list[Any] = [w.start, w.end]
    if feature:
        where.append("feature = ?")
        params.append(feature)
    if status in ("ok", "error"):
        where.append("status = ?")
        params.append(status)
    if q:
        # A trace id (or its start), a model or deployment name.
        where.append("(trace_id LIKE ? OR model = ? OR deployment = ?)")
        params += [q.strip() + "%", q.strip(), q.strip()]
    # The summary columns only: not the spans (spans_json) of a hundred requests.
    sql = (
        f"SELECT {', '.join(SUMMARY)} FROM traces WHERE {' AND '.join(where)}"
        " ORDER BY ts DESC LIMIT ?"
    )
    return db.execute(sql, (*params, limit))


def trace_detail(traces: Database, db: Database, trace_id: str) -> dict[str, Any] | None:
    """A trace's spans (from the trace store) and its ledger rows (from the main store)."""
    rows = traces.execute(
        f"SELECT {', '.join(SUMMARY)} FROM traces WHERE trace_id = ? ORDER BY ts", (trace_id,)
    )
    # The API's reader: spans in their request's row, or (before migration 0008) their own.
    spans = TraceRepository(traces).spans(trace_id) if rows else []
    ledger = db.execute("SELECT * FROM ledger WHERE trace_id = ? ORDER BY ts", (trace_id,))
    if not rows and not spans and not ledger:
        return None
    texts = traces.execute("SELECT * FROM trace_texts WHERE trace_id = ?", (trace_id,))
    # A shadowed request has a second trace row (arm shadow, started later) under the same
    # id: the page leads with the live request's row and its own text.
    first = next((r for r in rows if r["arm"] != "shadow"), rows[0] if rows else None)
    own = [t for t in texts if first is not None and t["span_id"] == first["span_id"]]
    return {
        "trace": first,
        "waterfall": waterfall(spans),
        "ledger": ledger,
        "text": (own or texts or [None])[0],
    }


def waterfall(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans (as :meth:`TraceRepository.spans` gives them) in tree order with their offset
    and width as shares of the whole trace."""
    if not spans:
        return []
    start = min(s["start_time_unix_nano"] for s in spans)
    end = max(s["end_time_unix_nano"] for s in spans)
    total = max(end - start, 1)
    children: dict[str | None, list[Any]] = {}
    ids = {s["span_id"] for s in spans}
    for s in spans:
        parent = s["parent_span_id"] if s["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(s)
    out: list[dict[str, Any]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in children.get(parent, []):
            begin, finish = s["start_time_unix_nano"], s["end_time_unix_nano"]
            attributes = s["attributes"]
            out.append(
                {
                    "name": s["name"],
                    "depth": depth,
                    "status": s["status"],
                    "offset": 100.0 * (begin - start) / total,
                    "width": max(100.0 * (finish - begin) / total, 0.4),
                    "start_ms": (begin - start) / 1e6,
                    "duration_ms": (finish - begin) / 1e6,
                    "attributes": sorted(attributes.items()) if isinstance(attributes, dict)
                    else [],
                }
            )  # fmt: skip
            walk(s["span_id"], depth + 1)

    walk(None, 0)
    return out


def audit(db: Database, action: str | None, limit: int = 200) -> list[dict[str, Any]]:
    if action:
        rows = db.execute(
            "SELECT * FROM audit_log WHERE action LIKE ? ORDER BY id DESC LIMIT ?",
            (action + "%", limit),
        )
    else:
        rows = db.execute("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))
    return [{"row": r, "detail": decode(r["detail"])} for r in rows]


def audit_actions(db: Database) -> list[str]:
    return [r["action"] for r in db.execute("SELECT DISTINCT action FROM audit_log ORDER BY 1")]
