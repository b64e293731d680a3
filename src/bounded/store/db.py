"""One synchronous connection to the store, SQLite or PostgreSQL, chosen by URL.

    db = Database.open("sqlite:///.bounded/bounded.db")    # or postgresql://host/db
    db.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,))

SQL is written once with ``?`` placeholders and converted for psycopg. Opening a database
runs the Alembic migrations to head, so a newer bounded opens an older file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from bounded.store.migrate import upgrade
from bounded.store.urls import dialect_of, psycopg_url, sqlite_path

Row = Any  # sqlite3.Row or a psycopg dict row: both index by column name
ROWS_PER_INSERT = 64  # per multi-row INSERT on SQLite, within its limit on variables


class Database:
    def __init__(self, url: str, conn: Any, dialect: str):
        self.url = url
        self.dialect = dialect
        self._conn = conn
        # One connection shared by the event loop and CLI threads: serialise use of it.
        self._lock = threading.RLock()

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Database:
        dialect = dialect_of(url)
        if migrate:
            upgrade(url)
        if dialect == "sqlite":
            path = sqlite_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            conn: Any = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit is a write() to the WAL, no fsync; it survives the
            # process being killed (only an OS crash can lose the last commits).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
        else:
            import psycopg
            from psycopg.rows import dict_row

            conn = psycopg.connect(psycopg_url(url), autocommit=True, row_factory=dict_row)
        return cls(url, conn, dialect)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            cur = self._conn.execute(self._sql(sql), params)
            return list(cur.fetchall()) if cur.description else []

    def execute_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write; return the number of rows it changed."""
        with self._lock:
            return int(self._conn.execute(self._sql(sql), params).rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            if self.dialect == "sqlite":
                self._sqlite_many(sql, rows)
            else:
                with self._conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)

    def _sqlite_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """A plain ``INSERT ... VALUES (?, ...)`` as statements of up to ``ROWS_PER_INSERT``
        rows each; anything else through ``executemany``.

        Why: Python's sqlite3 releases the GIL around every step of a statement, and
        ``executemany`` steps once per row. A thread writing a batch (the trace writer, the
        ledger's group commit) beside a busy event loop then hands the interpreter to the
        other thread and back once per row: a futex wake-up and a context switch each way.
        One statement for many rows steps once (measured under 64-concurrent load on one
        worker: half the futex calls, a third of the writer thread's context switches).
        The rows stored are the same; a refused row fails its whole statement, so batches
        belong in a transaction (every caller's are), whose rollback takes all of it."""
        head, values, group = sql.rpartition(" VALUES ")
        group = group.strip()
        plain = (
            values
            and head.lstrip().upper().startswith("INSERT")
            and group.startswith("(")
            and group.endswith(")")
            and ")" not in group[1:-1]  # one group of placeholders, nothing after it
        )
        if len(rows) < 2 or not plain:
            self._conn.executemany(sql, rows)
            return
        limit = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        most = max(1, min(ROWS_PER_INSERT, limit // max(1, group.count("?"))))
        start = 0
        while start < len(rows):
            # Powers of two: a handful of distinct statements, each prepared once and kept
            # in sqlite3's statement cache, whatever the batch sizes.
            count = min(most, 1 << ((len(rows) - start).bit_length() - 1))
            chunk = rows[start : start + count]
            start += count
            statement = _multi_row(head, group, count)
            self._conn.execute(statement, [value for row in chunk for value in row])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self.dialect == "sqlite":
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            else:
                with self._conn.transaction():
                    yield

    def data_version(self) -> int | None:
        """SQLite's counter of commits by other connections; None where there is none."""
        if self.dialect != "sqlite":
            return None
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


@lru_cache(maxsize=64)
def _multi_row(head: str, group: str, count: int) -> str:
    return f"{head} VALUES {', '.join([group] * count)}"
