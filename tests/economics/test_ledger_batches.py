"""One bad row never fails the other rows of its group commit, in SQLite and in PostgreSQL.

Both ledgers refuse a row that cannot be stored (an over-long id, a NUL byte) before it
joins a batch; when the database still refuses a batch, its rows are written one at a time
so that only the row the database refuses fails. A real SQLite file per test and a real
PostgreSQL database for this module; what was committed is read back through the store.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import string
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bounded.economics import ledger as sql_ledger
from bounded.economics import pg_ledger
from bounded.economics.ledger import (
    INT4,
    MAX_SESSION_CHARS,
    MAX_TRACE_ID_CHARS,
    LedgerRow,
    LedgerUnavailable,
    SqlLedger,
)
from bounded.economics.pg_ledger import PostgresLedger
from bounded.errors import BoundedError
from bounded.store.db import Database

GOOD = 60  # good rows around the bad one in a batch

# 100,000 random characters: PostgreSQL cannot compress them under its btree row limit
# (about 2,700 bytes) on the session index, which failed the whole batch.
HUGE_SESSION = "".join(random.Random(9).choices(string.ascii_letters + string.digits, k=100_000))


def row(trace_id: str, **fields: Any) -> LedgerRow:
    values: dict[str, Any] = {
        "ts": time.time(),
        "trace_id": trace_id,
        "session_id": "conversation-1",
        "key_id": "k_0123456789",
        "team": "support-team",
        "feature": "support-answer",
        "arm": "stable",
        "provider": "openai",
        "deployment": "gpt-4o-mini",
        "model": "gpt-4o-mini",
        "input_tokens": 14,
        "output_tokens": 8,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost_e10": 69000,
        "usage_source": "provider",
        "latency_ms": 12.5,
        "ttft_ms": None,
        "status": 200,
        "error_class": None,
        "attempts": 1,
        "stream": False,
    }
    values.update(fields)
    return LedgerRow(**values)


@dataclass
class Store:
    ledger: SqlLedger | PostgresLedger
    db: Database
    dialect: str
    prefix: str  # of every trace id this test writes: the PostgreSQL database is shared

    def trace(self, name: object) -> str:
        return f"{self.prefix}-{name}"

    def committed(self) -> set[str]:
        found = self.db.execute(
            "SELECT trace_id FROM ledger WHERE trace_id LIKE ?", (f"{self.prefix}-%",)
        )
        return {r["trace_id"] for r in found}

    def refuse_poison(self) -> None:
        """Make the database itself refuse rows whose model is 'poison' (no length or NUL
        check can see that coming), as a constraint a future migration might add would."""
        if self.dialect == "sqlite":
            self.db.execute(
                "CREATE TRIGGER IF NOT EXISTS refuse_poison BEFORE INSERT ON ledger"
                " WHEN NEW.model = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
            )
        else:
            self.db.execute("ALTER TABLE ledger DROP CONSTRAINT IF EXISTS refuse_poison")
            self.db.execute(
                "ALTER TABLE ledger ADD CONSTRAINT refuse_poison"
                " CHECK (model IS DISTINCT FROM 'poison')"
            )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(ledger_url: str) -> AsyncIterator[Store]:
    db = Database.open(ledger_url)  # migrated to head, as `bounded serve` leaves it
    ledger = PostgresLedger(ledger_url) if db.dialect == "postgresql" else SqlLedger(db)
    try:
        yield Store(ledger, db, db.dialect, secrets.token_hex(4))
    finally:
        await ledger.aclose()
        db.close()


async def one_batch(store: Store, rows: list[LedgerRow]) -> list[BaseException | None]:
    """Record all rows in the same event-loop turn, so that they form one group commit."""
    return await asyncio.gather(*(store.ledger.record(r) for r in rows), return_exceptions=True)


def mixed(store: Store, bad: LedgerRow) -> list[LedgerRow]:
    good = [row(store.trace(i)) for i in range(GOOD)]
    return [*good[: GOOD // 2], bad, *good[GOOD // 2 :]]


def assert_only_bad_failed(results: list[BaseException | None], bad_at: int) -> BaseException:
    failed = {i: r for i, r in enumerate(results) if r is not None}
    first = next(iter(failed.values()), None)
    assert list(failed) == [bad_at], f"{len(failed)} row(s) failed, the first with {first!r:.300}"
    return failed[bad_at]


def assert_invalid(error: BaseException, field: str) -> None:
    """Refused before the database: a client error of its own, not a 503 for the batch."""
    assert isinstance(error, BoundedError), repr(error)
    assert not isinstance(error, LedgerUnavailable), repr(error)
    assert (error.status, error.code, error.param) == (400, "invalid_ledger_row", field)
    assert field in error.message


async def test_an_oversized_session_fails_only_its_own_row(store: Store) -> None:
    bad = row(store.trace("huge-session"), session_id=HUGE_SESSION)
    results = await one_batch(store, mixed(store, bad))

    error = assert_only_bad_failed(results, GOOD // 2)
    assert_invalid(error, "session_id")
    assert "100000" in str(error)  # says how long it was
    assert store.committed() == {store.trace(i) for i in range(GOOD)}


@pytest.mark.parametrize("field", ["feature", "session_id", "error_class", "model"])
async def test_a_nul_byte_fails_only_its_own_row(store: Store, field: str) -> None:
    bad = row(store.trace("nul"), **{field: "before\x00after"})
    results = await one_batch(store, mixed(store, bad))

    assert_invalid(assert_only_bad_failed(results, GOOD // 2), field)
    assert store.committed() == {store.trace(i) for i in range(GOOD)}


async def test_a_row_the_database_refuses_fails_alone(store: Store) -> None:
    store.refuse_poison()
    bad = row(store.trace("poison"), model="poison")
    results = await one_batch(store, mixed(store, bad))

    error = assert_only_bad_failed(results, GOOD // 2)
    assert isinstance(error, LedgerUnavailable), repr(error)
    assert error.code == "ledger_row_rejected"
    assert store.committed() == {store.trace(i) for i in range(GOOD)}

    # The ledger keeps group-committing afterwards.
    later = [row(store.trace(f"later-{i}")) for i in range(GOOD)]
    assert await one_batch(store, later) == [None] * GOOD
    assert {r.trace_id for r in later} <= store.committed()


async def test_bad_rows_among_concurrent_writers_fail_alone(store: Store) -> None:
    """Twenty request-like tasks, each recording rows one after another; three bad rows."""
    store.refuse_poison()
    writers, per_writer = 20, 10
    bad = {
        (3, 4): {"session_id": HUGE_SESSION},
        (7, 2): {"team": "a\x00b"},
        (11, 6): {"model": "poison"},
    }

    async def writer(w: int) -> dict[tuple[int, int], BaseException]:
        failures: dict[tuple[int, int], BaseException] = {}
        for i in range(per_writer):
            await asyncio.sleep(random.random() / 1000)  # requests finish at odd moments
            try:
                await store.ledger.record(row(store.trace(f"{w}-{i}"), **bad.get((w, i), {})))
            except BoundedError as exc:
                failures[(w, i)] = exc
        return failures

    failures: dict[tuple[int, int], BaseException] = {}
    for found in await asyncio.gather(*(writer(w) for w in range(writers))):
        failures.update(found)

    assert set(failures) == set(bad)
    assert_invalid(failures[(3, 4)], "session_id")
    assert_invalid(failures[(7, 2)], "team")
    assert isinstance(failures[(11, 6)], LedgerUnavailable)
    expected = {
        store.trace(f"{w}-{i}")
        for w in range(writers)
        for i in range(per_writer)
        if (w, i) not in bad
    }
    assert store.committed() == expected


# What each database refuses on its own when the checks before the queue are switched off.
REFUSED = {
    "postgresql": {
        "huge-session": {"session_id": HUGE_SESSION},  # index row size exceeds btree maximum
        "nul": {"feature": "before\x00after"},  # psycopg refuses to send it
        "int4": {"input_tokens": INT4[1] + 1},  # integer out of range
    },
    "sqlite": {
        "int8": {"input_tokens": 2**70},  # OverflowError while binding
        "surrogate": {"session_id": "\udcff"},  # UnicodeEncodeError while binding
    },
}


async def test_what_the_database_refuses_past_the_checks_fails_alone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the checks ever miss a value, the row-by-row retry still confines the failure."""
    monkeypatch.setattr(sql_ledger, "check_row", lambda row: None)
    monkeypatch.setattr(pg_ledger, "check_row", lambda row: None)
    bad = {
        name: row(store.trace(name), **fields) for name, fields in REFUSED[store.dialect].items()
    }
    rows = [row(store.trace(i)) for i in range(GOOD)]
    for i, one in enumerate(bad.values()):
        rows.insert(i * 7, one)
    results = await one_batch(store, rows)

    failed = {rows[i].trace_id: r for i, r in enumerate(results) if r is not None}
    assert set(failed) == {r.trace_id for r in bad.values()}
    for error in failed.values():
        assert isinstance(error, LedgerUnavailable), repr(error)
        assert error.code == "ledger_row_rejected"
    assert store.committed() == {store.trace(i) for i in range(GOOD)}


async def test_the_limits_are_what_the_schema_holds(store: Store) -> None:
    """The longest values the checks let through are stored whole, in both databases."""
    longest = row(
        store.trace("x" * (MAX_TRACE_ID_CHARS - len(store.trace("")))),
        session_id="s" * MAX_SESSION_CHARS,
        input_tokens=INT4[1],
    )
    await store.ledger.record(longest)
    found = store.db.execute(
        "SELECT session_id, input_tokens FROM ledger WHERE trace_id = ?", (longest.trace_id,)
    )
    assert [(r["session_id"], r["input_tokens"]) for r in found] == [
        ("s" * MAX_SESSION_CHARS, INT4[1])
    ]

    for trace_id, fields, field in [
        ("over", {"session_id": "s" * (MAX_SESSION_CHARS + 1)}, "session_id"),
        ("x" * MAX_TRACE_ID_CHARS, {}, "trace_id"),
        ("over", {"output_tokens": INT4[1] + 1}, "output_tokens"),
    ]:
        with pytest.raises(BoundedError) as refused:
            await store.ledger.record(row(store.trace(trace_id), **fields))
        assert_invalid(refused.value, field)
    with pytest.raises(BoundedError) as refused:
        await store.ledger.record_alert(time.time(), "feature:x", "day", Decimal(1), "t" * 65)
    assert_invalid(refused.value, "trace_id")


@pytest.mark.postgres
async def test_a_connection_lost_while_idle_is_replaced_not_failed(postgres_url: str) -> None:
    """PostgreSQL restarted (or a proxy dropped the idle connection) between two batches:
    the next batch reconnects once and commits instead of answering 503."""
    prefix = secrets.token_hex(4)
    ledger = PostgresLedger(postgres_url)
    try:
        await ledger.record(row(f"{prefix}-before"))  # the connection is open and idle
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        rows = [row(f"{prefix}-{i}") for i in range(GOOD)]
        results = await asyncio.gather(*(ledger.record(r) for r in rows), return_exceptions=True)
    finally:
        await ledger.aclose()
    assert results == [None] * GOOD
    db = Database.open(postgres_url, migrate=False)
    try:
        found = db.execute(
            "SELECT COUNT(*) AS n FROM ledger WHERE trace_id LIKE ?", (f"{prefix}-%",)
        )
    finally:
        db.close()
    assert found[0]["n"] == GOOD + 1
