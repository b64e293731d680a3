"""Spend and cost per useful outcome, read from the ledger.

An outcome names a trace id; it links to every call whose trace id or session id equals
it, so one business outcome can pay for a conversation of several calls. When a trace gets
several outcomes, the latest counts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bounded.economics.ledger import E10
from bounded.store.db import Database

GROUPS = {"feature": "feature", "team": "team", "model": "deployment", "key": "key_id"}
SCOPE_COLUMNS = {"key": "key_id", "team": "team", "feature": "feature", "deployment": "deployment"}


def usd(amount: Decimal) -> str:
    """A plain decimal string: ``0``, ``0.00105``; never ``0E-10``."""
    return format(amount.normalize(), "f") if amount else "0"


def spend_since(db: Database, scope: str, start: float) -> Decimal:
    """Settled spend of one budget scope (``feature:support``) since ``start``."""
    kind, _, name = scope.partition(":")
    column = SCOPE_COLUMNS[kind]
    rows = db.execute(
        f"SELECT COALESCE(SUM(cost_e10), 0) AS total FROM ledger WHERE {column} = ? AND ts >= ?",
        (name, start),
    )
    return Decimal(int(rows[0]["total"])) / E10


@dataclass
class SpendLine:
    group: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    successes: int
    failures: int
    outcome_value: float
    # Cascades: what their requests cost (every step), and what the accepted answers
    # would have cost had the route always used its last, dearest target.
    cascade_cost_usd: Decimal = Decimal(0)
    always_last_usd: Decimal = Decimal(0)

    @property
    def cost_per_success(self) -> Decimal | None:
        return (
            (self.cost_usd / self.successes).quantize(Decimal("1e-8")) if self.successes else None
        )

    def as_dict(self) -> dict[str, Any]:
        cps = self.cost_per_success
        return {
            "group": self.group,
            "requests": self.requests,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": usd(self.cost_usd),
            "successes": self.successes,
            "failures": self.failures,
            "outcome_value": self.outcome_value,
            "cost_per_success_usd": None if cps is None else usd(cps),
            "cascade_cost_usd": usd(self.cascade_cost_usd),
            "cascade_always_last_usd": usd(self.always_last_usd),
        }


def spend_report(
    db: Database, by: str, since: float, until: float | None = None
) -> list[SpendLine]:
    if by not in GROUPS:
        raise ValueError(f"group by one of {', '.join(GROUPS)}")
    column = GROUPS[by]
    until = until or time.time() + 1
    lines: dict[str, SpendLine] = {}
    for row in db.execute(
        f"SELECT {column} AS grp, COUNT(*) AS n,"
        " SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,"
        " SUM(input_tokens) AS tin, SUM(output_tokens) AS tout, SUM(cost_e10) AS cost,"
        " SUM(baseline_cost_e10) AS baseline,"
        " SUM(CASE WHEN trace_id IN (SELECT trace_id FROM ledger WHERE baseline_cost_e10"
        " IS NOT NULL AND ts >= ? AND ts < ?) THEN cost_e10 ELSE 0 END) AS cascaded"
        " FROM ledger WHERE ts >= ? AND ts < ? GROUP BY " + column,
        (since, until, since, until),
    ):
        name = row["grp"] or "-"
        lines[name] = SpendLine(
            name,
            int(row["n"]),
            int(row["errors"] or 0),
            int(row["tin"] or 0),
            int(row["tout"] or 0),
            Decimal(int(row["cost"] or 0)) / E10,
            0,
            0,
            0.0,
            Decimal(int(row["cascaded"] or 0)) / E10,
            Decimal(int(row["baseline"] or 0)) / E10,
        )
    # Latest outcome per trace id, then the groups of the calls it links to.
    linked: dict[tuple[str, int], tuple[str, float]] = {}
    for row in db.execute(
        f"SELECT o.id AS oid, o.outcome AS outcome, o.value AS value, c.{column} AS grp"
        " FROM outcomes o JOIN ledger c ON (c.trace_id = o.trace_id OR c.session_id = o.trace_id)"
        " WHERE c.ts >= ? AND c.ts < ? AND o.id = (SELECT MAX(o2.id) FROM outcomes o2"
        " WHERE o2.trace_id = o.trace_id)",
        (since, until),
    ):
        linked[(row["grp"] or "-", int(row["oid"]))] = (row["outcome"], float(row["value"] or 0))
    counts: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for (group, _), (outcome, value) in linked.items():
        entry = counts[group]
        entry[0 if outcome == "success" else 1] += 1
        entry[2] += value if outcome == "success" else 0.0
    for group, (wins, losses, value) in counts.items():
        if group in lines:
            lines[group].successes, lines[group].failures = int(wins), int(losses)
            lines[group].outcome_value = value
    return sorted(lines.values(), key=lambda line: line.cost_usd, reverse=True)


def record_outcome(
    db: Database, trace_id: str, outcome: str, value: float | None, key_id: str | None
) -> int:
    """Store an outcome; return how many ledger calls it links to (0: unknown trace id)."""
    linked = db.execute(
        "SELECT COUNT(*) AS n FROM ledger WHERE trace_id = ? OR session_id = ?",
        (trace_id, trace_id),
    )[0]["n"]
    if linked:
        db.execute(
            "INSERT INTO outcomes (ts, trace_id, outcome, value, key_id) VALUES (?, ?, ?, ?, ?)",
            (time.time(), trace_id, outcome, value, key_id),
        )
    return int(linked)
