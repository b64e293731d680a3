"""Dashboard figures from the hourly rollup, plus what arrived since it last ran.

    cells = grid(db, w.start, w.end, w.bucket_s)            # as governance.signals.grid
    view = read(db, first_hour, end_hour, ("feature",), dim="feature")

Hours before ``rolled_until`` come from ``ledger_hourly`` (:mod:`bounded.economics.rollup`),
which is exact for the ledger rows at or below its watermark and in no gap; the rows it has
not seen (past the watermark, or filling a gap: a late row, a replica's commit out of id
order) are added on top, summed straight from the ledger by id. Outcomes are corrected per
trace: for each trace with a new outcome, or with a late call while it has one, what it
added to the rolled hours when they were rolled is taken off and what it adds now is put
on. The current hour and any the job has not reached are read from raw rows. So each
figure equals what a query over the raw ledger says, at any time between two runs. A run
that commits while a page reads would make the two count some rows twice: the state's
version is read again at the end, and the read is done again if it moved.

A rollup far behind (more than ``STALE_ROWS`` rows or outcomes past its watermarks: the job
is not running, or is still filling a big ledger) is not trusted at all: the window is read
raw, correct and as slow as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bounded.dashboard.runs import Runs, runs_percentile
from bounded.economics.hourly import (
    HOUR,
    ROLLED_SUMS,
    Cell,
    cells_where,
    contributions,
    covered,
    hour_of,
    merge,
    raw_cells,
    raw_outcomes,
    trace_rows,
    unpack,
    with_outcomes,
)
from bounded.economics.rollup import State, read_state, scan
from bounded.governance.settings import AlertsConfig
from bounded.governance.signals import Signals
from bounded.store.db import Database

STALE_ROWS = 20_000


@dataclass
class View:
    cells: dict[tuple[Any, ...], Cell]  # (hour, *group): sums
    wins: dict[tuple[int, Any], list[int]]  # (hour, group of ``dim``): [successes, failures]
    raw_hours: int  # how many hours were read from the ledger itself
    late_rows: int  # rows the rollup has not seen, added on top of its hours


@dataclass
class Unseen:
    """What arrived since the rollup's last run."""

    rows: list[Any]  # ledger rows past the watermark or in a gap: id, ts, trace_id
    traces: set[str]  # traces whose outcome cells changed: a new outcome, or a late call


def unseen(db: Database, state: State, now: float) -> Unseen | None:
    """None: more than ``STALE_ROWS`` of it."""
    rows, _, _, cut = scan(
        db, "ledger", "id, ts, trace_id", state.ledger_upto, state.gaps.get("ledger", []),
        STALE_ROWS, now,
    )  # fmt: skip
    outcomes, _, _, cut_outcomes = scan(
        db, "outcomes", "id, trace_id", state.outcomes_upto, state.gaps.get("outcomes", []),
        STALE_ROWS, now,
    )  # fmt: skip
    if cut or cut_outcomes:
        return None
    # A row at or after rolled_until cannot move a trace's first call into a rolled hour
    # (every rolled call of its trace is earlier), so only earlier ones change outcomes.
    late = {str(r["trace_id"]) for r in rows if hour_of(float(r["ts"])) < state.rolled_until}
    traces = {str(r["trace_id"]) for r in outcomes} | with_outcomes(db, late, None)
    return Unseen(rows, traces)


def read(
    db: Database,
    first_hour: int,
    end_hour: int,
    group: Sequence[str],
    *,
    dim: str | None = None,
    chat_only: bool = False,
    latencies: bool = False,
    bucket_hours: int = 1,
    now: float | None = None,
) -> View:
    """Sums per ``(hour, *group)`` over ``[first_hour, end_hour)``, and the outcomes per
    ``(hour, group)`` of dimension ``dim`` (feature, team or deployment).

    ``bucket_hours``: the caller adds hours up in buckets of that many from ``first_hour``;
    the rolled hours then come summed per bucket, keyed by its first hour (a month by day is
    240 cells of eight features read, not 5,760 of hours), the raw ones still per hour."""
    now = time.time() if now is None else now
    shape = _Shape(first_hour, end_hour, tuple(group), dim, chat_only, latencies, bucket_hours)
    for _ in range(3):
        state = read_state(db)
        view = _read(db, state, shape, now)
        if read_state(db).version == state.version:
            return view
    # The job committed during each of three reads (it runs every few seconds at most):
    # read raw rows only, which needs no agreement with it.
    return _read(db, None, shape, now)


@dataclass(frozen=True)
class _Shape:
    """What a read asks for."""

    first_hour: int
    end_hour: int
    group: tuple[str, ...]
    dim: str | None
    chat_only: bool
    latencies: bool
    bucket_hours: int


def _read(db: Database, state: State | None, shape: _Shape, now: float) -> View:
    first_hour, end_hour, group = shape.first_hour, shape.end_hour, shape.group
    dim, chat_only, latencies = shape.dim, shape.chat_only, shape.latencies
    if state is None:
        state = State(0, 0, 0, 0, {})
    split = min(max(state.rolled_until, first_hour), end_hour)
    new = unseen(db, state, now) if split > first_hour else None
    if new is None:
        split = first_hour  # nothing rolled in the window, or the rollup is far behind
    rolled = [(first_hour, split)] if split > first_hour else []
    bucket = _bucket_sql(first_hour, shape.bucket_hours)
    cells = _rolled_cells(db, rolled, group, chat_only, latencies, bucket)
    wins: dict[tuple[int, Any], list[int]] = {}
    if dim is not None:
        for first, end in rolled:
            for r in db.execute(
                f"SELECT {bucket} AS b_hour, grp, SUM(successes) AS s, SUM(failures) AS f"
                " FROM ledger_hourly_outcomes WHERE dim = ? AND hour >= ? AND hour < ?"
                " GROUP BY b_hour, grp",
                (dim, first, end),
            ):
                _count(wins, (int(r["b_hour"]), r["grp"]), int(r["s"]), int(r["f"]))
    late = 0
    if new is not None and rolled:
        late = _add_unseen(db, state, new, cells, wins, (first_hour, split), group, dim,
                           chat_only, latencies)  # fmt: skip
    tail = [(split, end_hour)] if end_hour > split else []
    for key, cell in raw_cells(db, tail, group, chat_only=chat_only, latencies=latencies).items():
        merge(cells, key, cell)
    if dim is not None:
        for (hour, d, grp), (s, f) in raw_outcomes(db, tail).items():
            if d == dim:
                _count(wins, (hour, grp), s, f)
    return View(cells, wins, end_hour - split, late)


def _add_unseen(
    db: Database, state: State, new: Unseen, cells: dict[tuple[Any, ...], Cell],
    wins: dict[tuple[int, Any], list[int]], span: tuple[int, int], group: Sequence[str],
    dim: str | None, chat_only: bool, latencies: bool,
) -> int:  # fmt: skip
    """Add to the rolled hours of ``span`` the rows and outcome changes they lack."""
    low, high = span[0] * HOUR, span[1] * HOUR
    ids = [int(r["id"]) for r in new.rows if low <= float(r["ts"]) < high]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        # By id (the primary key), never by the ts index: ``+ts`` keeps the planner off it.
        found = cells_where(
            db, f"id IN ({', '.join('?' * len(chunk))}) AND +ts >= ? AND +ts < ?",
            [*chunk, low, high], group, chat_only=chat_only, latencies=latencies,
        )  # fmt: skip
        for key, cell in found.items():
            merge(cells, (min(max(key[0], span[0]), span[1] - 1), *key[1:]), cell)
    if dim is not None and new.traces:
        calls, outcomes = trace_rows(db, new.traces)
        holes, outcome_holes = state.gaps.get("ledger", []), state.gaps.get("outcomes", [])
        before = contributions(
            [c for c in calls if covered(int(c["id"]), state.ledger_upto, holes)],
            [o for o in outcomes if covered(int(o["id"]), state.outcomes_upto, outcome_holes)],
        )
        for sign, wins_of in ((-1, before), (1, contributions(calls, outcomes))):
            for (hour, d, grp), (s, f) in wins_of.items():
                if d == dim and span[0] <= hour < span[1]:
                    _count(wins, (hour, grp), sign * s, sign * f)
    return len(ids)


def _count(wins: dict[tuple[int, Any], list[int]], key: tuple[int, Any], s: int, f: int) -> None:
    counts = wins.setdefault(key, [0, 0])
    counts[0] += s
    counts[1] += f


def _bucket_sql(anchor: int, hours: int) -> str:
    """The first hour of an hour's bucket (buckets of ``hours`` from ``anchor``, every hour
    read at or after it). Integer division, not ``%``: psycopg reads ``%`` as a parameter."""
    if hours <= 1:
        return "hour"
    return f"({int(anchor)} + (hour - {int(anchor)}) / {int(hours)} * {int(hours)})"


# Rows of one group in a fixed order, so that the runs and their sizes come in the same one
# (on SQLite both aggregates see the rows in one pass, in the same order).
_ORDER = "ORDER BY hour, feature, team, deployment, operation"


def _latencies_sql(db: Database) -> str:
    """A group's stored runs end to end as one value, and their sizes (one row to read per
    group and bucket, not one per stored row: a month's overview has 28,000)."""
    if db.dialect == "postgresql":
        return (
            f", string_agg(latencies, ''::bytea {_ORDER}) AS lat_runs,"
            f" string_agg(CAST(length(latencies) / 8 AS TEXT), ',' {_ORDER}) AS lat_sizes"
        )
    # SQLite has no blob aggregate, but group_concat copies a blob's bytes as they are into
    # its text (text is bytes in the database's encoding) and the cast gives them back; in
    # a UTF-16 store that would transcode them, so there the blobs go through hex.
    runs = "CAST(group_concat(latencies, '') AS BLOB)"
    if str(db.execute("PRAGMA encoding")[0][0]).upper() != "UTF-8":
        runs = "group_concat(hex(latencies), '')"
    return f", {runs} AS lat_runs, group_concat(length(latencies) / 8) AS lat_sizes"


def _rolled_cells(
    db: Database, spans: list[tuple[int, int]], group: Sequence[str], chat_only: bool,
    latencies: bool, bucket: str,
) -> dict[tuple[Any, ...], Cell]:  # fmt: skip
    cols = "".join(f", {c}" for c in group)
    chat = " AND operation = 'chat'" if chat_only else ""
    lats = _latencies_sql(db) if latencies else ""
    out: dict[tuple[Any, ...], Cell] = {}
    for first, end in spans:
        for r in db.execute(
            f"SELECT {bucket} AS b_hour{cols}, {ROLLED_SUMS}{lats} FROM ledger_hourly"
            f" WHERE hour >= ? AND hour < ?{chat} GROUP BY b_hour{cols}",
            (first, end),
        ):
            cell = Cell.of(r)
            if latencies and r["lat_sizes"]:
                blob = r["lat_runs"]
                values = unpack(bytes.fromhex(blob) if isinstance(blob, str) else blob)
                sizes = list(map(int, r["lat_sizes"].split(",")))
                cell.runs.append(Runs.of_sizes(values, sizes))
            merge(out, (int(r["b_hour"]), *(r[c] for c in group)), cell)
    return out


@dataclass
class RolledSignals(Signals):
    """Signals whose latencies are sorted runs (an hour's each), so that the p95 of a month
    is found without sorting a million floats: same value, a tenth of the time."""

    runs: list[Any] = field(default_factory=list)

    @property
    def latency_p95_ms(self) -> float | None:
        return runs_percentile(self.runs + ([sorted(self.latencies)] if self.latencies else []),
                               0.95)  # fmt: skip


def signals(cell: Cell | None, wins: list[int] | None) -> RolledSignals:
    s = RolledSignals()
    if cell is not None:
        s.requests, s.errors = cell.requests, cell.errors
        s.validated, s.validation_failed = cell.validated, cell.vfailed
        s.refusals, s.answered, s.output_tokens = cell.refusals, cell.answered, cell.answer_tokens
        s.grounded, s.groundedness_sum = cell.grounded, cell.gsum
        s.cost_e10 = cell.cost_e10
        s.runs = cell.runs + ([sorted(cell.latencies)] if cell.latencies else [])
    if wins is not None:
        s.successes, s.failures = wins
    return s


def bucket_hours(since: float, bucket_s: float) -> int:
    """Whole hours per bucket, for :func:`read`, when buckets of ``bucket_s`` from ``since``
    are made of whole clock hours; else 1 (hour by hour, always right)."""
    whole = since % HOUR == 0 and bucket_s % HOUR == 0 and bucket_s >= HOUR
    return int(bucket_s // HOUR) if whole else 1


def grid(
    db: Database, since: float, until: float, bucket_s: float
) -> dict[tuple[str, int], Signals]:
    """Signals per (feature, bucket) from ``since`` (an hour boundary), as
    :func:`bounded.governance.signals.grid` gives them from raw rows, with one difference:
    an outcome counts in the bucket of its trace's first call in the feature."""
    first, end = hour_of(since), -(-int(until) // HOUR)
    view = read(db, first, end, ("feature",), dim="feature", chat_only=True, latencies=True,
                bucket_hours=bucket_hours(since, bucket_s))  # fmt: skip
    cells: dict[tuple[str, int], Cell] = {}
    for (hour, feature), cell in view.cells.items():
        merge(cells, (feature or "-", int((hour * HOUR - since) // bucket_s)), cell)
    wins: dict[tuple[str, int], list[int]] = {}
    for (hour, feature), (s, f) in view.wins.items():
        counts = wins.setdefault((feature or "-", int((hour * HOUR - since) // bucket_s)), [0, 0])
        counts[0] += s
        counts[1] += f
    return {key: signals(cells.get(key), wins.get(key)) for key in cells.keys() | wins.keys()}


def add(into: Signals, s: Signals) -> None:
    into.requests += s.requests
    into.errors += s.errors
    into.validated += s.validated
    into.validation_failed += s.validation_failed
    into.refusals += s.refusals
    into.answered += s.answered
    into.output_tokens += s.output_tokens
    into.grounded += s.grounded
    into.groundedness_sum += s.groundedness_sum
    into.successes += s.successes
    into.failures += s.failures
    into.cost_e10 += s.cost_e10
    into.latencies += s.latencies
    if isinstance(into, RolledSignals) and isinstance(s, RolledSignals):
        into.runs += s.runs


def by_feature(cells: dict[tuple[str, int], Signals]) -> dict[str, Signals]:
    """As :func:`bounded.governance.signals.by_feature`, with the faster p95."""
    out: dict[str, Signals] = {}
    for (name, _), s in cells.items():
        add(out.setdefault(name, RolledSignals()), s)
    return out


def over_time(
    cells: dict[tuple[str, int], Signals], since: float, until: float, bucket_s: float
) -> list[tuple[float, Signals]]:
    """As :func:`bounded.governance.signals.over_time`, with the faster p95."""
    count = max(1, math.ceil((until - since) / bucket_s))
    merged: list[Signals] = [RolledSignals() for _ in range(count)]
    for (_, b), s in cells.items():
        if 0 <= b < count:
            add(merged[b], s)
    return [(since + i * bucket_s, s) for i, s in enumerate(merged)]


def baseline_hours(db: Database, settings: AlertsConfig, now: float) -> dict[str, list[Signals]]:
    """Every feature's hourly signals over the baseline window before the current one, on
    whole clock hours (what bands are learned from; the drift check's hours start at its
    own ``now``, so its learned bands can differ from these in the last digits)."""
    end = hour_of(now - settings.window_s) * HOUR
    cells = grid(db, end - settings.baseline_s // HOUR * HOUR, end, HOUR)
    hours: dict[str, list[Signals]] = {}
    for (name, _), s in sorted(cells.items()):
        hours.setdefault(name, []).append(s)
    return hours
