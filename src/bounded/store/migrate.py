"""Alembic migrations to head, for SQLite and PostgreSQL alike."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bounded.store.db import dialect_of, psycopg_url, sqlite_path

# Any constant: replicas starting together take turns migrating PostgreSQL.
_PG_LOCK = 7_215_001


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "bounded.store:migrations")
    return config


def sqlalchemy_url(url: str) -> str:
    if dialect_of(url) == "postgresql":
        return "postgresql+psycopg://" + psycopg_url(url).split("://", 1)[1]
    sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    return url


def upgrade(url: str) -> None:
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
