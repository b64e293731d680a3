"""Eval runs in the store (tables ``eval_runs`` and ``eval_cases``, migration 0003).

    save_run(db, run)                            # one transaction: all of it or nothing
    latest_passing_run(db, "support-answer")     # for a release gate: None if none passed

A run is written only once it finished and was gated, in one transaction, so an
interrupted or broken run leaves nothing half-written.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from bounded.store.db import Database


def new_run_id() -> str:
    return "ev_" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(3)


@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    created_at: float
    suite: str
    description: str | None
    feature: str | None
    target: str | None
    prompt_version: str | None
    passed: bool
    successes: int
    failures: int
    errors: int
    pass_rate: float
    cost_usd: float
    duration_ms: float
    baseline: str | None
    summary: dict[str, Any]


def save_run(db: Database, report: dict[str, Any]) -> str:
    """Store a finished run from its JSON report; returns its id."""
    b = report["bounded"]
    stats = report["results"]["stats"]
    results = report["results"]["results"]
    summary = {k: v for k, v in b.items() if k not in ("run_id",)}
    summary["stats"] = stats
    with db.transaction():
        db.execute(
            "INSERT INTO eval_runs (id, created_at, suite, description, feature, target,"
            " prompt_version, passed, successes, failures, errors, pass_rate, cost_e10,"
            " duration_ms, baseline, summary) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                b["run_id"],
                b["created_at"],
                b["suite"],
                report["config"].get("description"),
                b.get("feature"),
                b.get("target"),
                b.get("prompt_version"),
                bool(b["gate"]["passed"]),
                stats["successes"],
                stats["failures"],
                stats["errors"],
                b["pass_rate"],
                round(b["cost_usd"] * 1e10),
                b["duration_ms"],
                (b.get("baseline") or {}).get("run_id"),
                json.dumps(summary, default=str),
            ),
        )
        db.executemany(
            "INSERT INTO eval_cases (run_id, idx, case_key, passed, score, result)"
            " VALUES (?,?,?,?,?,?)",
            [
                (
                    b["run_id"],
                    i,
                    r["bounded"]["key"],
                    bool(r["success"]),
                    float(r["score"]),
                    json.dumps(r, default=str),
                )
                for i, r in enumerate(results)
            ],
        )
    return str(b["run_id"])


def _row(row: Any) -> RunRow:
    return RunRow(
        id=row["id"],
        created_at=row["created_at"],
        suite=row["suite"],
        description=row["description"],
        feature=row["feature"],
        target=row["target"],
        prompt_version=row["prompt_version"],
        passed=bool(row["passed"]),
        successes=row["successes"],
        failures=row["failures"],
        errors=row["errors"],
        pass_rate=row["pass_rate"],
        cost_usd=row["cost_e10"] / 1e10,
        duration_ms=row["duration_ms"],
        baseline=row["baseline"],
        summary=json.loads(row["summary"]),
    )


def list_runs(db: Database, feature: str | None = None, limit: int = 20) -> list[RunRow]:
    if feature is None:
        rows = db.execute("SELECT * FROM eval_runs ORDER BY created_at DESC LIMIT ?", (limit,))
    else:
        rows = db.execute(
            "SELECT * FROM eval_runs WHERE feature = ? ORDER BY created_at DESC LIMIT ?",
            (feature, limit),
        )
    return [_row(r) for r in rows]


def get_run(db: Database, run_id: str) -> RunRow | None:
    rows = db.execute("SELECT * FROM eval_runs WHERE id = ?", (run_id,))
    return _row(rows[0]) if rows else None


def run_cases(db: Database, run_id: str) -> list[dict[str, Any]]:
    rows = db.execute("SELECT result FROM eval_cases WHERE run_id = ? ORDER BY idx", (run_id,))
    return [json.loads(r["result"]) for r in rows]


def latest_passing_run(
    db: Database, feature: str, *, prompt_version: str | None = None, since: float | None = None
) -> RunRow | None:
    """The newest run of ``feature`` whose gate passed (optionally of one prompt version,
    or newer than ``since``): what a release gate asks before a canary starts."""
    sql = "SELECT * FROM eval_runs WHERE feature = ? AND passed = ?"
    params: list[Any] = [feature, True]
    if prompt_version is not None:
        sql += " AND prompt_version = ?"
        params.append(prompt_version)
    if since is not None:
        sql += " AND created_at >= ?"
        params.append(since)
    rows = db.execute(sql + " ORDER BY created_at DESC LIMIT 1", params)
    return _row(rows[0]) if rows else None
