"""Dashboard figures from the hourly rollup, with raw rows only where it is not exact yet.

    cells = grid(db, w.start, w.end, w.bucket_s)            # as governance.signals.grid
    view = read(db, first_hour, end_hour, ("feature",), dim="feature")

A window's hours are read from ``ledger_hourly`` where the rollup
(:mod:`bounded.economics.rollup`) is exact for them, and from the ledger itself for the
rest: the hours from ``rolled_until`` on (the current one, and any the job has not reached),
and every rolled hour that something arrived for since the last run (a late row, a row in a
gap, a new outcome, a late call of a trace with one). The two parts never overlap, so each
figure equals what a query over the raw ledger says. The state row is read before the
cells: a run that commits in between only changes hours this read already takes raw.

A rollup far behind (more than ``STALE_ROWS`` rows past its watermark: the job is not
running, or is still filling a big ledger) is not trusted at all: the window is read raw,
correct and as slow as before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bounded.economics.hourly import (
    HOUR,
    ROLLED_SUMS,
    Cell,
    hour_of,
    ranges,
    raw_cells,
    raw_outcomes,
    touched_hours,
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


def stale_hours(db: Database, state: State, now: float) -> set[int] | None:
    """The rolled hours something arrived for since the last run; None: too much did."""
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
    # A row at or after rolled_until is read raw anyway, and cannot move a trace's first
    # call into a rolled hour (every rolled call of its trace is earlier).
    late = [r for r in rows if hour_of(float(r["ts"])) < state.rolled_until]
    dirty = {hour_of(float(r["ts"])) for r in late}
    traces = {str(r["trace_id"]) for r in outcomes}
    traces |= with_outcomes(db, {str(r["trace_id"]) for r in late}, None)
    dirty |= touched_hours(db, traces, None)
    return {h for h in dirty if h < state.rolled_until}


def read(
    db: Database,
    first_hour: int,
    end_hour: int,
    group: Sequence[str],
    *,
    dim: str | None = None,
    chat_only: bool = False,
    latencies: bool = False,
    now: float | None = None,
) -> View:
    """Sums per ``(hour, *group)`` over ``[first_hour, end_hour)``, and the outcomes per
    ``(hour, group)`` of dimension ``dim`` (feature, team or deployment)."""
    now = time.time() if now is None else now
    state = read_state(db)
    split = min(max(state.rolled_until, first_hour), end_hour)
    raw = set(range(split, end_hour))
    if split > first_hour:
        dirty = stale_hours(db, state, now)
        rollable = set(range(first_hour, split))
        raw |= rollable if dirty is None else dirty & rollable
    rolled = ranges(h for h in range(first_hour, split) if h not in raw)
    cells = _rolled_cells(db, rolled, group, chat_only, latencies)
    raw_spans = ranges(raw)
    fresh = raw_cells(db, raw_spans, group, chat_only=chat_only, latencies=latencies)
    for key, cell in fresh.items():
        if key in cells:
            cells[key].add(cell)
        else:
            cells[key] = cell
    wins: dict[tuple[int, Any], list[int]] = {}
    if dim is not None:
        for first, end in rolled:
            for r in db.execute(
                "SELECT hour, grp, successes, failures FROM ledger_hourly_outcomes"
                " WHERE dim = ? AND hour >= ? AND hour < ?",
                (dim, first, end),
            ):
                _count(wins, (int(r["hour"]), r["grp"]), int(r["successes"]), int(r["failures"]))
        for (hour, d, grp), (s, f) in raw_outcomes(db, raw_spans).items():
            if d == dim:
                _count(wins, (hour, grp), s, f)
    return View(cells, wins, sum(end - first for first, end in raw_spans))


def _count(wins: dict[tuple[int, Any], list[int]], key: tuple[int, Any], s: int, f: int) -> None:
    counts = wins.setdefault(key, [0, 0])
    counts[0] += s
    counts[1] += f


def _rolled_cells(
    db: Database, spans: list[tuple[int, int]], group: Sequence[str], chat_only: bool,
    latencies: bool,
) -> dict[tuple[Any, ...], Cell]:  # fmt: skip
    cols = "".join(f", {c}" for c in group)
    chat = " AND operation = 'chat'" if chat_only else ""
    out: dict[tuple[Any, ...], Cell] = {}
    for first, end in spans:
        for r in db.execute(
            f"SELECT hour{cols}, {ROLLED_SUMS} FROM ledger_hourly"
            f" WHERE hour >= ? AND hour < ?{chat} GROUP BY hour{cols}",
            (first, end),
        ):
            out[(int(r["hour"]), *(r[c] for c in group))] = Cell.of(r)
        if latencies:  # one packed array per stored row, joined per group here
            for r in db.execute(
                f"SELECT hour{cols}, latencies FROM ledger_hourly"
                f" WHERE hour >= ? AND hour < ?{chat}",
                (first, end),
            ):
                out[(int(r["hour"]), *(r[c] for c in group))].latencies += unpack(r["latencies"])
    return out


def signals(cell: Cell | None, wins: list[int] | None) -> Signals:
    s = Signals()
    if cell is not None:
        s.requests, s.errors = cell.requests, cell.errors
        s.validated, s.validation_failed = cell.validated, cell.vfailed
        s.refusals, s.answered, s.output_tokens = cell.refusals, cell.answered, cell.answer_tokens
        s.grounded, s.groundedness_sum = cell.grounded, cell.gsum
        s.cost_e10, s.latencies = cell.cost_e10, cell.latencies
    if wins is not None:
        s.successes, s.failures = wins
    return s


def grid(
    db: Database, since: float, until: float, bucket_s: float
) -> dict[tuple[str, int], Signals]:
    """Signals per (feature, bucket) from ``since`` (an hour boundary), as
    :func:`bounded.governance.signals.grid` gives them from raw rows, with one difference:
    an outcome counts in the bucket of its trace's first call in the feature."""
    first, end = hour_of(since), -(-int(until) // HOUR)
    view = read(db, first, end, ("feature",), dim="feature", chat_only=True, latencies=True)
    out: dict[tuple[str, int], Signals] = {}
    for (hour, feature), cell in view.cells.items():
        key = (feature or "-", int((hour * HOUR - since) // bucket_s))
        _merge_into(out, key, signals(cell, None))
    for (hour, feature), counts in view.wins.items():
        key = (feature or "-", int((hour * HOUR - since) // bucket_s))
        _merge_into(out, key, signals(None, counts))
    return out


def _merge_into(out: dict[tuple[str, int], Signals], key: tuple[str, int], s: Signals) -> None:
    if key not in out:
        out[key] = s
        return
    into = out[key]
    for name in Signals.__dataclass_fields__:
        if name == "latencies":
            into.latencies += s.latencies
        else:
            setattr(into, name, getattr(into, name) + getattr(s, name))


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
