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
from typing import Any

from bounded.store.migrate import upgrade
from bounded.store.urls import dialect_of, psycopg_url, sqlite_path

Row = Any  # sqlite3.Row or a psycopg dict row: both index by column name


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
                self._conn.executemany(sql, rows)
            else:
                with self._conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)

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
