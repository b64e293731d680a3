"""Migrations: a fresh SQLite file reaches Alembic's head, and the fast path agrees."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from bounded.store.db import Database
from bounded.store.migrate import HEAD_REVISION, alembic_config, at_head


def test_head_constant_matches_alembic() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_fresh_file_is_migrated_to_head_and_reopens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    assert not at_head(url)
    db = Database.open(url)
    tables = {r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"api_keys", "ledger", "outcomes", "budget_alerts", "alembic_version"} <= tables
    db.close()
    assert at_head(url)
    Database.open(url).close()  # the fast path: no second migration, no error
