"""A prompt store on real SQLite and on real PostgreSQL (one database per module)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from bounded.store.db import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'prompts.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database.open(url)
    yield db
    db.close()


@pytest.fixture
def feature() -> str:
    """A feature name of its own: the PostgreSQL database is shared by a module's tests."""
    return f"support-{secrets.token_hex(3)}"
