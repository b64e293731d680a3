"""``Database.executemany`` on SQLite: a batch of any size is stored whole, row for row and in
order, whether it goes out as multi-row INSERTs or through ``executemany``; a refused row
leaves none of its transaction's batch behind. A real SQLite file per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bounded.store.db import ROWS_PER_INSERT, Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(f"sqlite:///{tmp_path}/t.db", migrate=False)
    database.execute(
        "CREATE TABLE t (n INTEGER PRIMARY KEY, label TEXT, amount REAL, raw BLOB, note TEXT)"
    )
    yield database
    database.close()


def rows(count: int) -> list[tuple[object, ...]]:
    return [
        (i, f"row {i}", i / 7, bytes([i % 256]) * 3, None if i % 3 else "third")
        for i in range(count)
    ]


def stored(db: Database) -> list[tuple[object, ...]]:
    return [
        tuple(r) for r in db.execute("SELECT n, label, amount, raw, note FROM t ORDER BY rowid")
    ]


@pytest.mark.parametrize("count", [1, 2, 3, 15, ROWS_PER_INSERT, ROWS_PER_INSERT + 1, 250])
def test_a_batch_of_any_size_is_stored_whole_and_in_order(db: Database, count: int) -> None:
    batch = rows(count)
    with db.transaction():
        db.executemany("INSERT INTO t (n, label, amount, raw, note) VALUES (?, ?, ?, ?, ?)", batch)
    assert stored(db) == batch


def test_a_refused_row_leaves_nothing_of_its_batch(db: Database) -> None:
    db.executemany("INSERT INTO t (n, label, amount, raw, note) VALUES (?, ?, ?, ?, ?)", rows(1))
    batch = rows(100)[1:]
    batch.insert(70, (0, "a duplicate of row 0", 0.0, b"", None))  # primary key taken
    with pytest.raises(Exception, match="UNIQUE"), db.transaction():
        db.executemany("INSERT INTO t (n, label, amount, raw, note) VALUES (?, ?, ?, ?, ?)", batch)
    assert stored(db) == rows(1)


def test_statements_that_are_not_plain_inserts_still_run_row_by_row(db: Database) -> None:
    first = rows(10)
    db.executemany("INSERT INTO t (n, label, amount, raw, note) VALUES (?, ?, ?, ?, ?)", first)
    # An upsert (text after VALUES) and an UPDATE: each row is its own statement, as before.
    db.executemany(
        "INSERT INTO t (n, label) VALUES (?, ?)"
        " ON CONFLICT (n) DO UPDATE SET label = excluded.label",
        [(1, "one"), (2, "two"), (50, "fifty")],
    )
    db.executemany("UPDATE t SET note = ? WHERE n = ?", [("x", 3), ("y", 4)])
    got = {r["n"]: (r["label"], r["note"]) for r in db.execute("SELECT n, label, note FROM t")}
    assert got[1][0] == "one" and got[2][0] == "two" and got[50] == ("fifty", None)
    assert got[3][1] == "x" and got[4][1] == "y" and got[5] == ("row 5", None)
    assert len(got) == 11
