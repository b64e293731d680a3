"""SQLite for the embedded default: one file, WAL mode, named migrations.

Migrations are plain functions applied in order and recorded in ``_migrations`` so a newer
bounded opens an older file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

Migration = Callable[[sqlite3.Connection], None]


def path_from_url(url: str) -> Path:
    """``sqlite:///relative/path.db`` or ``sqlite:////abs/path.db`` to a Path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///path/to/file.db)")
    return Path(url[len(prefix):])


def connect(url: str, migrations: list[tuple[str, Migration]]) -> sqlite3.Connection:
    path = path_from_url(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    migrate(conn, migrations)
    return conn


def migrate(conn: sqlite3.Connection, migrations: list[tuple[str, Migration]]) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    for name, apply in migrations:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check inside the write lock: another process may have just applied it.
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("COMMIT")
                continue
            apply(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, unixepoch('subsec'))",
                (name,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
