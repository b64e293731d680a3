"""The ledger's hourly rollup: what the dashboard reads instead of a month of rows.

    result = roll_up(db)                                   # one batch; result.more: call again
    task = asyncio.create_task(rollup_forever(store_url))  # the gateway's background job

``ledger_hourly`` holds one row per (hour, feature, team, deployment, operation) with the
sums every page needs and the hour's latencies (sorted, packed float64: p95 stays exact), and
``ledger_hourly_outcomes`` one per (hour, dimension, group) with successes and failures.
``ledger_hourly_state`` (one row) says what the two cover; readers are in
:mod:`bounded.dashboard.rolled`.

Exactly correct, late rows included, by re-rolling whole hours rather than adding deltas:
an hour's cells are always recomputed from the raw ledger, limited to rows with
``id <= ledger_upto`` outside the gaps below, and written in the same transaction that
moves the watermark. So an hour's cells are a pure function of the committed ledger below
the watermark: running twice changes nothing (idempotent), and a row whose ``ts`` falls in
an hour rolled long ago (a client that reports late, a replica's clock) only makes that
hour dirty; the next run recomputes it whole, and until then readers add the rows past the
watermark on top. Rows arriving out of id order are the one case a watermark alone would
miss (PostgreSQL: replica A takes id 100, B takes 101 and commits first): ids skipped below
the watermark are kept as gaps, left out of every cell, looked at again on every run, and
dropped after ``GAP_TTL_S`` (a rolled-back batch's ids never come; a ledger transaction is
one batch, milliseconds; a row committed later than that would be missed). SQLite has one
writer, so its ids commit in order and it has no such gaps.

An outcome counts once per trace and group (feature, team or deployment), in the hour of
the trace's first call in that group, with the trace's latest outcome. A new outcome, or a
late call of a trace that has one, makes every hour of that trace's calls dirty.
Several jobs (workers, replicas) may run at once: the state row is compare-and-set on its
``version``, so the loser's batch is dropped, never half-written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from bounded.economics.hourly import (
    KEY,
    SUMS,
    hour_of,
    pack,
    ranges,
    raw_cells,
    raw_outcomes,
    touched_hours,
    with_outcomes,
)
from bounded.store.db import Database

log = logging.getLogger("bounded.rollup")

GAP_TTL_S = 3600.0
INTERVAL_S = 15.0  # how often the gateway's job rolls up (also how stale a reader can find it)
BATCH = 50_000  # new ledger rows per run: one short write transaction each


@dataclass
class State:
    version: int
    ledger_upto: int
    outcomes_upto: int
    rolled_until: int  # hours below this one are rolled (their cells exist or they are empty)
    gaps: dict[str, list[list[float]]]  # table: [[first id, last id, seen at], ...]


def read_state(db: Database) -> State:
    rows = db.execute("SELECT * FROM ledger_hourly_state WHERE id = 1")
    if not rows:
        return State(0, 0, 0, 0, {})
    r = rows[0]
    return State(
        int(r["version"]), int(r["ledger_upto"]), int(r["outcomes_upto"]),
        int(r["rolled_until"]), json.loads(r["gaps"] or "{}"),
    )  # fmt: skip


def scan(
    db: Database,
    table: str,
    columns: str,
    upto: int,
    gaps: list[list[float]],
    limit: int,
    now: float,
) -> tuple[list[Any], int, list[list[float]], bool]:
    """Rows of ``table`` past ``upto`` (at most ``limit``) or filling an old gap; the new
    watermark; the gaps still open; whether ``limit`` cut the scan short."""
    found: list[Any] = []
    still: list[list[float]] = []
    for first, last, seen in gaps:
        got = db.execute(
            f"SELECT {columns} FROM {table} WHERE id >= ? AND id <= ? ORDER BY id",
            (int(first), int(last)),
        )
        found += got
        if now - seen < GAP_TTL_S:
            still += _missing(int(first), int(last), [int(r["id"]) for r in got], seen)
    rows = db.execute(
        f"SELECT {columns} FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (upto, limit)
    )
    new_upto = int(rows[-1]["id"]) if rows else upto
    still += _missing(upto + 1, new_upto, [int(r["id"]) for r in rows], now)
    return found + rows, new_upto, still, len(rows) >= limit


def _missing(first: int, last: int, ids: list[int], seen: float) -> list[list[float]]:
    out: list[list[float]] = []
    expected = first
    for i in sorted(ids):
        if i > expected:
            out.append([expected, i - 1, seen])
        expected = max(expected, i + 1)
    if expected <= last:
        out.append([expected, last, seen])
    return out


@dataclass
class Result:
    rows: int  # ledger rows read past the watermark (or filling a gap)
    outcomes: int
    hours: int  # hours recomputed
    more: bool  # the batch was full: call again
    written: bool  # False when another job moved the state first


def roll_up(db: Database, *, now: float | None = None, batch: int = BATCH) -> Result:
    """One batch: read what is new since the watermarks, recompute the hours it touches
    (and the hours completed since the last run), write them with the new watermarks."""
    now = time.time() if now is None else now
    until = hour_of(now)  # the current hour is never rolled: readers read it raw
    state = read_state(db)
    rows, upto, ledger_gaps, more = scan(
        db, "ledger", "id, ts, trace_id", state.ledger_upto, state.gaps.get("ledger", []),
        batch, now,
    )  # fmt: skip
    outcomes, oupto, outcome_gaps, more_outcomes = scan(
        db, "outcomes", "id, trace_id", state.outcomes_upto, state.gaps.get("outcomes", []),
        batch, now,
    )  # fmt: skip
    dirty = {hour_of(float(r["ts"])) for r in rows}
    if state.rolled_until:  # hours completed since: their earlier rows were not rolled yet
        dirty |= set(range(state.rolled_until, until))
    traces = {str(r["trace_id"]) for r in outcomes}
    traces |= with_outcomes(db, {str(r["trace_id"]) for r in rows}, oupto)
    dirty |= touched_hours(db, traces, upto)
    dirty = {h for h in dirty if h < until}
    spans = ranges(dirty)
    # Ids still missing below the watermarks stay out of every cell, so that a reader can
    # add them on top once they arrive, and the next run rolls them in.
    cells = raw_cells(db, spans, KEY, upto=upto, holes=ledger_gaps, latencies=True)
    wins = raw_outcomes(
        db, spans, upto=upto, outcomes_upto=oupto, holes=ledger_gaps, outcome_holes=outcome_gaps
    )
    gaps = {k: v for k, v in (("ledger", ledger_gaps), ("outcomes", outcome_gaps)) if v}
    with db.transaction():
        # Compare-and-set first: it takes the row's lock, so a second job waits here and
        # then finds the version moved, and writes nothing.
        moved = db.execute_count(
            "UPDATE ledger_hourly_state SET version = ?, ledger_upto = ?, outcomes_upto = ?,"
            " rolled_until = ?, gaps = ?, updated_at = ? WHERE id = 1 AND version = ?",
            (state.version + 1, upto, oupto, max(until, state.rolled_until),
             json.dumps(gaps), now, state.version),
        )  # fmt: skip
        if moved == 1:
            for first, end in spans:
                db.execute("DELETE FROM ledger_hourly WHERE hour >= ? AND hour < ?", (first, end))
                db.execute(
                    "DELETE FROM ledger_hourly_outcomes WHERE hour >= ? AND hour < ?", (first, end)
                )
            if cells:
                db.executemany(
                    f"INSERT INTO ledger_hourly (hour, {', '.join(KEY)}, {', '.join(SUMS)},"
                    f" latencies) VALUES ({', '.join('?' * (2 + len(KEY) + len(SUMS)))})",
                    [
                        (
                            key[0],
                            *key[1:],
                            *(getattr(c, s) for s in SUMS),
                            pack(sorted(c.latencies)),
                        )
                        for key, c in cells.items()
                    ],
                )
            if wins:
                db.executemany(
                    "INSERT INTO ledger_hourly_outcomes (hour, dim, grp, successes, failures)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(h, dim, grp, s, f) for (h, dim, grp), (s, f) in wins.items()],
                )
    if moved != 1:
        log.info("another rollup job moved the state first; this batch was dropped")
    return Result(len(rows), len(outcomes), len(dirty), more or more_outcomes, moved == 1)


def roll_up_all(db: Database, *, now: float | None = None, batch: int = BATCH) -> int:
    """Batches until nothing is left; the number of hours recomputed."""
    hours = 0
    while True:
        result = roll_up(db, now=now, batch=batch)
        hours += result.hours
        if not result.more or not result.written:
            return hours


async def rollup_forever(store_url: str, interval_s: float = INTERVAL_S) -> None:
    """The gateway's job: roll up every ``interval_s``, on a connection of its own, in a
    worker thread (never on the event loop, never on a request's path)."""
    db: Database | None = None
    try:
        while True:
            try:
                if db is None:
                    db = await asyncio.to_thread(Database.open, store_url, migrate=False)
                hours = await asyncio.to_thread(roll_up_all, db)
                if hours:
                    log.debug("rollup recomputed %d hour(s)", hours)
            except Exception:  # a failed run must not end the task (or the gateway)
                log.exception("ledger rollup failed; trying again next interval")
            await asyncio.sleep(interval_s)
    finally:
        if db is not None:
            db.close()
