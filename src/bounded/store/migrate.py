"""Alembic migrations to head, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from bounded.store.urls import dialect_of, psycopg_url, sqlite_path

# Any constant: replicas starting together take turns migrating PostgreSQL.
_PG_LOCK = 7_215_001

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "bounded.store:migrations")
    return config


def sqlalchemy_url(url: str) -> str:
    if dialect_of(url) == "postgresql":
        return "postgresql+psycopg://" + psycopg_url(url).split("://", 1)[1]
    sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    return url


def _newest_revision() -> str:
    """The highest ``NNNN_`` prefix in migrations/versions, read without importing Alembic.

    Revisions are numbered in sequence (each revises the one before), so the highest
    number is the head; a test keeps it equal to what Alembic computes.
    """
    versions = Path(__file__).with_name("migrations") / "versions"
    return max(p.name.split("_", 1)[0] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))


HEAD_REVISION = _newest_revision()


def at_head(url: str) -> bool:
    """Already migrated? Checked with the plain driver, so a warm start skips Alembic."""
    try:
        if dialect_of(url) == "sqlite":
            path = sqlite_path(url)
            if not path.exists():
                return False
            conn = sqlite3.connect(path, timeout=10)
        else:
            import psycopg

            conn = psycopg.connect(psycopg_url(url))  # type: ignore[assignment]
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            conn.close()
    except Exception:  # no table yet, or not reachable: let Alembic decide and report
        return False
    return row is not None and row[0] == HEAD_REVISION


# Alembic's ``context`` and ``op`` are module globals that each upgrade installs and
# removes: two upgrades in two threads at once (the trace writer creating its store while
# another store is created) corrupt each other, up to a crash in SQLite. One at a time.
_upgrading = threading.Lock()


def upgrade(url: str) -> None:
    if at_head(url):
        return
    with _upgrading:
        if not at_head(url):  # another thread may have done it meanwhile
            _upgrade(url)


def _upgrade(url: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
            else:
                conn.exec_driver_sql("PRAGMA busy_timeout=10000")
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    finally:
        engine.dispose()
