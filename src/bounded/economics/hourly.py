"""Sums of ledger rows per hour, from raw rows: what the rollup stores and readers add.

    cells = raw_cells(db, [(first_hour, end_hour)], ("feature",), chat_only=True)
    wins = raw_outcomes(db, [(first_hour, end_hour)])   # {(hour, "feature", name): [s, f]}

An hour is ``floor(ts / 3600)``, and a row belongs to the hour whose range selects it. Used
by :mod:`bounded.economics.rollup` (which writes them) and :mod:`bounded.dashboard.rolled`
(which reads them, adding raw rows where the rollup is not exact yet).
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bounded.store.db import Database

HOUR = 3600
DIMENSIONS = ("feature", "team", "deployment")
KEY = ("feature", "team", "deployment", "operation")
SUMS = (
    "requests", "errors", "validated", "vfailed", "refusals", "answered", "answer_tokens",
    "grounded", "gsum", "cost_e10", "input_tokens", "output_tokens",
)  # fmt: skip
# The sums over raw ledger rows, named as the rollup's columns.
RAW_SUMS = (
    "COUNT(*) AS requests, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,"
    " SUM(CASE WHEN validation IS NOT NULL THEN 1 ELSE 0 END) AS validated,"
    " SUM(CASE WHEN validation = 'failed' THEN 1 ELSE 0 END) AS vfailed,"
    " SUM(CASE WHEN error_class = 'content_refused' THEN 1 ELSE 0 END) AS refusals,"
    " SUM(CASE WHEN status < 400 THEN 1 ELSE 0 END) AS answered,"
    " SUM(CASE WHEN status < 400 THEN output_tokens ELSE 0 END) AS answer_tokens,"
    " SUM(CASE WHEN groundedness IS NOT NULL THEN 1 ELSE 0 END) AS grounded,"
    " SUM(groundedness) AS gsum, SUM(cost_e10) AS cost_e10, SUM(input_tokens) AS input_tokens,"
    " SUM(output_tokens) AS output_tokens"
)
ROLLED_SUMS = ", ".join(f"SUM({c}) AS {c}" for c in SUMS)


@dataclass
class Cell:
    """The sums of a group of ledger rows (an hour's, or any merge of them)."""

    requests: int = 0
    errors: int = 0
    validated: int = 0
    vfailed: int = 0
    refusals: int = 0
    answered: int = 0
    answer_tokens: int = 0
    grounded: int = 0
    gsum: float = 0.0
    cost_e10: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latencies: list[float] = field(default_factory=list)  # as read from raw rows
    runs: list[Any] = field(default_factory=list)  # sorted arrays, as the rollup keeps them

    @classmethod
    def of(cls, row: Any) -> Cell:
        cell = cls()
        for name in SUMS:
            setattr(cell, name, int(row[name] or 0) if name != "gsum" else float(row[name] or 0))
        return cell

    def add(self, other: Cell) -> None:
        # Spelled out: a page merges thousands of cells, and a loop of getattr/setattr
        # took a tenth of the month's overview.
        self.requests += other.requests
        self.errors += other.errors
        self.validated += other.validated
        self.vfailed += other.vfailed
        self.refusals += other.refusals
        self.answered += other.answered
        self.answer_tokens += other.answer_tokens
        self.grounded += other.grounded
        self.gsum += other.gsum
        self.cost_e10 += other.cost_e10
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.latencies += other.latencies
        self.runs += other.runs


def hour_of(ts: float) -> int:
    """The hour whose range ``[h * 3600, (h + 1) * 3600)`` holds ``ts`` (what the range
    queries below select, even where a division would round across the boundary)."""
    h = math.floor(ts / HOUR)
    if ts < h * HOUR:
        h -= 1
    elif ts >= (h + 1) * HOUR:
        h += 1
    return h


def ranges(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Hours as half-open ``(first, last + 1)`` runs: one range query per run of hours."""
    out: list[tuple[int, int]] = []
    for h in sorted(set(hours)):
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + 1)
        else:
            out.append((h, h + 1))
    return out


def hour_sql(dialect: str) -> str:
    expr = f"ts / {float(HOUR)}"
    return (
        f"CAST(FLOOR({expr}) AS BIGINT)" if dialect == "postgresql" else f"CAST({expr} AS INTEGER)"
    )


def latencies_sql(dialect: str) -> str:
    # Every digit (SQLite's plain text of a REAL keeps 15), so the p95 is the ledger's own.
    if dialect == "postgresql":
        return "string_agg(CAST(latency_ms AS TEXT), ',')"
    return "GROUP_CONCAT(printf('%!.17g', latency_ms))"


def pack(values: list[float]) -> bytes:
    packed = array("d", values)
    if sys.byteorder == "big":
        packed.byteswap()  # stored little-endian, whichever machine wrote it
    return packed.tobytes()


def unpack(blob: bytes | memoryview | None) -> array[float]:
    """A stored hour's latencies: sorted, as :func:`pack` was given them."""
    packed = array("d")
    if blob:
        packed.frombytes(bytes(blob))
        if sys.byteorder == "big":
            packed.byteswap()
    return packed


IdRanges = Sequence[Sequence[float]]  # [first id, last id, ...]: gaps, ids not to count


def holes_sql(column: str, holes: IdRanges) -> tuple[str, list[int]]:
    sql = "".join(f" AND NOT ({column} BETWEEN ? AND ?)" for _ in holes)
    return sql, [int(v) for lo, hi, *_ in holes for v in (lo, hi)]


def covered(i: int, upto: int | None, holes: IdRanges) -> bool:
    return (upto is None or i <= upto) and not any(lo <= i <= hi for lo, hi, *_ in holes)


def raw_cells(
    db: Database,
    spans: Sequence[tuple[int, int]],
    group: Sequence[str],
    *,
    upto: int | None = None,
    holes: IdRanges = (),
    chat_only: bool = False,
    latencies: bool = False,
) -> dict[tuple[Any, ...], Cell]:
    """Cells keyed ``(hour, *group)`` from raw ledger rows in the hour ranges ``spans``
    (ids at or below ``upto``, none in ``holes``)."""
    where, params = holes_sql("id", holes)
    if upto is not None:
        where, params = where + " AND id <= ?", [*params, upto]
    out: dict[tuple[Any, ...], Cell] = {}
    for first, end in spans:
        found = cells_where(
            db, "ts >= ? AND ts < ?" + where, [first * HOUR, end * HOUR, *params], group,
            chat_only=chat_only, latencies=latencies,
        )  # fmt: skip
        for (hour, *rest), cell in found.items():
            # A row the range selected belongs to the range, whatever the division said.
            merge(out, (min(max(hour, first), end - 1), *rest), cell)
    return out


def cells_where(
    db: Database,
    where: str,
    params: Sequence[Any],
    group: Sequence[str],
    *,
    chat_only: bool = False,
    latencies: bool = False,
) -> dict[tuple[Any, ...], Cell]:
    """Cells keyed ``(hour, *group)`` from the ledger rows ``where`` selects."""
    cols = "".join(f", {c}" for c in group)
    chat = " AND operation = 'chat'" if chat_only else ""
    lats = f", {latencies_sql(db.dialect)} AS lats" if latencies else ""
    out: dict[tuple[Any, ...], Cell] = {}
    for r in db.execute(
        f"SELECT {hour_sql(db.dialect)} AS hour{cols}, {RAW_SUMS}{lats} FROM ledger"
        f" WHERE {where}{chat} GROUP BY hour{cols}",
        params,
    ):
        cell = Cell.of(r)
        if latencies and r["lats"]:
            cell.latencies = [float(v) for v in r["lats"].split(",")]
        merge(out, (int(r["hour"]), *(r[c] for c in group)), cell)
    return out


def merge(out: dict[tuple[Any, ...], Cell], key: tuple[Any, ...], cell: Cell) -> None:
    if key in out:
        out[key].add(cell)
    else:
        out[key] = cell


Wins = dict[tuple[int, str, Any], list[int]]  # (hour, dimension, group): [successes, failures]


def contributions(calls: Iterable[Any], outcomes: Iterable[Any]) -> Wins:
    """What some traces add to the outcome cells: each trace's latest outcome, once per
    group, in the hour of its first call in that group. ``calls``: rows with trace_id, ts
    and the dimensions; ``outcomes``: rows with id, trace_id and outcome."""
    latest: dict[str, tuple[int, str]] = {}
    for r in outcomes:
        t = str(r["trace_id"])
        if t not in latest or int(r["id"]) > latest[t][0]:
            latest[t] = (int(r["id"]), str(r["outcome"]))
    first_call: dict[tuple[str, str, Any], float] = {}
    for r in calls:
        if str(r["trace_id"]) not in latest:
            continue
        for dim in DIMENSIONS:
            key = (str(r["trace_id"]), dim, r[dim])
            if key not in first_call or float(r["ts"]) < first_call[key]:
                first_call[key] = float(r["ts"])
    out: Wins = {}
    for (trace, dim, grp), ts in first_call.items():
        counts = out.setdefault((hour_of(ts), dim, grp), [0, 0])
        counts[0 if latest[trace][1] == "success" else 1] += 1
    return out


def trace_rows(db: Database, traces: Iterable[str]) -> tuple[list[Any], list[Any]]:
    """Every call and every outcome of ``traces``."""
    calls: list[Any] = []
    outcomes: list[Any] = []
    ordered = sorted(set(traces))
    for i in range(0, len(ordered), 500):
        chunk = ordered[i : i + 500]
        marks = ", ".join("?" * len(chunk))
        calls += db.execute(
            "SELECT id, trace_id, ts, feature, team, deployment FROM ledger"
            f" WHERE trace_id IN ({marks})",
            chunk,
        )
        outcomes += db.execute(
            f"SELECT id, trace_id, outcome FROM outcomes WHERE trace_id IN ({marks})", chunk
        )
    return calls, outcomes


def raw_outcomes(
    db: Database,
    spans: Sequence[tuple[int, int]],
    *,
    upto: int | None = None,
    outcomes_upto: int | None = None,
    holes: IdRanges = (),
    outcome_holes: IdRanges = (),
) -> Wins:
    """The outcome cells of the hours in ``spans``, from the calls and outcomes at or below
    the two ids and in no hole."""
    lid = " AND c.id <= ?" if upto is not None else ""
    oid = " AND o.id <= ?" if outcomes_upto is not None else ""
    limits = [v for v in (upto, outcomes_upto) if v is not None]
    traces: set[str] = set()
    for first, end in spans:
        # CROSS JOIN: SQLite then walks the hour's calls (ix_ledger_ts) and looks each trace
        # up in outcomes; no DISTINCT, which made it walk ix_ledger_trace, the whole ledger
        # (PostgreSQL plans it freely).
        for r in db.execute(
            "SELECT c.trace_id AS t FROM ledger c CROSS JOIN outcomes o WHERE"
            f" o.trace_id = c.trace_id AND c.ts >= ? AND c.ts < ?{lid}{oid}",
            (first * HOUR, end * HOUR, *limits),
        ):
            traces.add(str(r["t"]))
    calls, outcomes = trace_rows(db, traces)
    wins = contributions(
        [c for c in calls if covered(int(c["id"]), upto, holes)],
        [o for o in outcomes if covered(int(o["id"]), outcomes_upto, outcome_holes)],
    )
    hours = {h for first, end in spans for h in range(first, end)}
    return {key: counts for key, counts in wins.items() if key[0] in hours}


def touched_hours(db: Database, traces: set[str], upto: int | None) -> set[int]:
    """Every hour a call of one of ``traces`` (at or below ``upto``) falls in."""
    hours: set[int] = set()
    ordered = sorted(traces)
    for i in range(0, len(ordered), 500):
        chunk = ordered[i : i + 500]
        sql = f"SELECT ts FROM ledger WHERE trace_id IN ({', '.join('?' * len(chunk))})"
        params: list[Any] = list(chunk)
        if upto is not None:
            sql += " AND id <= ?"
            params.append(upto)
        hours |= {hour_of(float(r["ts"])) for r in db.execute(sql, params)}
    return hours


def with_outcomes(db: Database, traces: set[str], outcomes_upto: int | None) -> set[str]:
    """Those of ``traces`` that have an outcome (at or below ``outcomes_upto``)."""
    out: set[str] = set()
    ordered = sorted(traces)
    for i in range(0, len(ordered), 500):
        chunk = ordered[i : i + 500]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT DISTINCT trace_id FROM outcomes WHERE trace_id IN ({marks})"
        params: list[Any] = list(chunk)
        if outcomes_upto is not None:
            sql += " AND id <= ?"
            params.append(outcomes_upto)
        out |= {str(r["trace_id"]) for r in db.execute(sql, params)}
    return out
