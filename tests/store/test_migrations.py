"""Migrations: a fresh SQLite file reaches Alembic's head, and the fast path agrees.

The index on ``ledger.release_id`` (migration 0010) takes only the rows of a release, and
every read of a release's rows still uses it, on SQLite and PostgreSQL; the one on
``session_id`` (0011) only the rows of a session, and outcomes still find a session's calls
through it. A store at 0009 with ledger rows upgrades to both and downgrades back to the full
indexes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from bounded.config.schema import RouteConfig
from bounded.dashboard.records import releases as dashboard_releases
from bounded.economics.ledger import INSERT, LedgerRow, row_values
from bounded.releases.answers import shadow_pairs
from bounded.releases.signals import cost_by_arm, read_arms
from bounded.releases.store import ReleaseStore
from bounded.store.db import Database
from bounded.store.migrate import HEAD_REVISION, alembic_config, at_head, sqlalchemy_url
from tests.threads import failures_at_once


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


# -- ledger.release_id's index: partial since 0010 --------------------------------------

PARTIAL = "ix_ledger_release_partial"
FULL = "ix_ledger_release"  # 0007's, on every row
SESSION_PARTIAL = "ix_ledger_session_partial"  # 0011's; 0001's was ix_ledger_session


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'b.db'}"
    return str(request.getfixturevalue("postgres_url"))  # shared by the module


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def _revision(db: Database) -> str:
    return str(db.execute("SELECT version_num FROM alembic_version")[0]["version_num"])


def _ledger_indexes(db: Database, column: str) -> dict[str, str]:
    """Name -> definition of each index on ``ledger.<column>``, as the database keeps it."""
    if db.dialect == "sqlite":
        rows = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ledger'"
        )
        found = {r["name"]: r["sql"] for r in rows}
    else:
        rows = db.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ledger'")
        found = {r["indexname"]: r["indexdef"] for r in rows}
    return {name: sql for name, sql in found.items() if f"({column})" in sql}


def _release_indexes(db: Database) -> dict[str, str]:
    return _ledger_indexes(db, "release_id")


def _session_indexes(db: Database) -> dict[str, str]:
    return _ledger_indexes(db, "session_id")


def _plan(db: Database, sql: str, params: Sequence[Any]) -> list[str]:
    """The planner's lines for ``sql``: SQLite's EXPLAIN QUERY PLAN or PostgreSQL's EXPLAIN."""
    if db.dialect == "sqlite":
        return [str(r["detail"]) for r in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
    return [str(r["QUERY PLAN"]) for r in db.execute("EXPLAIN " + sql, params)]


def _row(trace_id: str, arm: str, release_id: str | None, cost_e10: int) -> LedgerRow:
    return LedgerRow(
        ts=time.time(), trace_id=trace_id, session_id=None, key_id="k_0123456789",
        team="support-team", feature="support-answer", arm=arm, provider="openai",
        deployment="gpt-4o-mini", model="gpt-4o-mini", input_tokens=14, output_tokens=8,
        cached_tokens=0, reasoning_tokens=0, cost_e10=cost_e10, usage_source="provider",
        latency_ms=12.5, ttft_ms=None, status=200, error_class=None, attempts=1,
        stream=False, validation="passed", release_id=release_id,
    )  # fmt: skip


def _write(db: Database, rows: list[LedgerRow]) -> None:
    db.executemany(INSERT, [row_values(r) for r in rows])


def _release_rows(prefix: str, release_id: str, treated: str) -> list[LedgerRow]:
    """Ten requests of a release, each on both arms, among forty rows outside any release
    (the ledger's usual case): what the index is for."""
    rows = [_row(f"{prefix}-plain-{i}", "stable", None, 1) for i in range(40)]
    for i in range(10):
        rows.append(_row(f"{prefix}-{i}", "stable", release_id, 100))
        rows.append(_row(f"{prefix}-{i}", treated, release_id, 300))
    return rows


def _release_reads(db: Database, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Any, ...]]:
    """Every statement the product runs on the ledger by release id (the evaluator's
    signals, the shadow answers, the dashboard's Releases page), as it ran it."""
    store = ReleaseStore(db)
    prefix = secrets.token_hex(4)  # the PostgreSQL database is shared by this module
    route = RouteConfig(targets=("m",))
    releases = {
        mode: store.start(f"{prefix}-{mode}", mode=mode, share=0.5, candidate_prompt=None,
                          route=route, actor="ci")
        for mode in ("canary", "shadow")
    }  # fmt: skip
    for mode, release in releases.items():
        _write(db, _release_rows(f"{prefix}-{mode}", release.id, mode))
    seen: dict[str, tuple[Any, ...]] = {}
    execute = db.execute

    def recording(sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if "FROM ledger" in sql and "release_id = ?" in sql:
            seen.setdefault(sql, tuple(params))
        return execute(sql, params)

    with monkeypatch.context() as patch:
        patch.setattr(db, "execute", recording)
        canary, shadow = releases["canary"], releases["shadow"]
        stable, candidate = read_arms(db, canary)
        assert (len(stable), len(candidate)) == (10, 10)  # no row of the release is missed
        assert cost_by_arm(db, canary) == {"stable": 1000 / 1e10, "canary": 3000 / 1e10}
        assert len(shadow_pairs(db, None, shadow, limit=50)) == 10
        shadow_pairs(db, None, shadow, differ=True)
        pages = {r["row"]["id"]: r["arms"] for r in dashboard_releases(db)}
        assert [a["requests"] for a in pages[shadow.id]] == [10, 10]
    return seen


def test_release_index_is_partial_and_every_release_read_uses_it(
    any_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database.open(any_url)
    try:
        assert _revision(db) == HEAD_REVISION
        (name, definition), *others = _release_indexes(db).items()
        assert not others and name == PARTIAL  # 0007's full index is gone
        where = "release_id IS NOT NULL" if db.dialect == "sqlite" else "(release_id IS NOT NULL)"
        assert definition.endswith(f" WHERE {where}"), definition

        reads = _release_reads(db, monkeypatch)
        # read_arms, its outcomes, cost_by_arm, the newest pairs, the differing pairs,
        # the pairs' rows, the dashboard's arms.
        assert len(reads) >= 7
        if db.dialect == "postgresql":
            db.execute("SET enable_seqscan = off")  # a few rows: a scan would be cheaper
        for sql, params in reads.items():
            lines = _plan(db, sql, params)
            wanted = f"USING INDEX {PARTIAL}" if db.dialect == "sqlite" else f" {PARTIAL}"
            assert any(wanted in line for line in lines), (sql, lines)
    finally:
        db.close()


def test_a_store_at_0009_with_ledger_rows_upgrades_and_downgrades(any_url: str) -> None:
    if any_url.startswith("sqlite"):
        _migrate(any_url, "0009")
    else:  # the module's database: already at head when another test ran first
        Database.open(any_url).close()
        _migrate(any_url, "0009", down=True)
    db = Database.open(any_url, migrate=False)
    try:
        assert _revision(db) == "0009"
        assert list(_release_indexes(db)) == [FULL]
        assert list(_session_indexes(db)) == ["ix_ledger_session"]  # 0001's, on every row
        release_id = secrets.token_hex(8)
        rows = _release_rows(release_id, release_id, "canary")
        _write(db, rows)
        count = "SELECT COUNT(*) AS n FROM ledger WHERE release_id = ?"
        before = db.execute("SELECT COUNT(*) AS n FROM ledger")[0]["n"]
    finally:
        db.close()

    db = Database.open(any_url)  # what `bounded serve` does with an older store
    try:
        assert _revision(db) == HEAD_REVISION
        assert list(_release_indexes(db)) == [PARTIAL]
        assert list(_session_indexes(db)) == [SESSION_PARTIAL]
        assert db.execute("SELECT COUNT(*) AS n FROM ledger")[0]["n"] == before
        assert db.execute(count, (release_id,))[0]["n"] == 20
    finally:
        db.close()

    _migrate(any_url, "0009", down=True)  # the full index again, rows kept
    db = Database.open(any_url, migrate=False)
    try:
        indexes = _release_indexes(db)
        assert list(indexes) == [FULL] and "WHERE" not in indexes[FULL]
        sessions = _session_indexes(db)
        full_session = "ix_ledger_session"
        assert list(sessions) == [full_session] and "WHERE" not in sessions[full_session]
        assert db.execute(count, (release_id,))[0]["n"] == 20
    finally:
        db.close()
    Database.open(any_url).close()  # and up to head once more


def test_stores_created_at_once_in_several_threads_all_reach_head(tmp_path: Path) -> None:
    # A gateway's trace writer creates its store in its own thread while others may be
    # creating theirs: Alembic's globals must not be shared between two upgrades.
    from bounded.store.migrate import upgrade

    urls = [f"sqlite:///{tmp_path / f'store-{i}.db'}" for i in range(6)]
    failures = failures_at_once(upgrade, urls)
    assert not failures, failures
    assert all(at_head(url) for url in urls)


# -- ledger.session_id's index: partial since 0011 --------------------------------------


def test_session_index_is_partial_and_outcomes_still_find_sessions(
    any_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from bounded.economics.spend import record_outcome, spend_report

    db = Database.open(any_url)
    try:
        (name, definition), *others = _session_indexes(db).items()
        assert not others and name == SESSION_PARTIAL  # 0001's full index is gone
        where = "session_id IS NOT NULL" if db.dialect == "sqlite" else "(session_id IS NOT NULL)"
        assert definition.endswith(f" WHERE {where}"), definition

        prefix = secrets.token_hex(4)  # the PostgreSQL database is shared by this module
        session = f"{prefix}-session"
        start = time.time() - 1
        plain = [_row(f"{prefix}-plain-{i}", "stable", None, 1) for i in range(40)]
        sessioned = [
            replace(_row(f"{prefix}-turn-{i}", "stable", None, 5), session_id=session)
            for i in range(3)
        ]
        _write(db, plain + sessioned)
        seen: dict[str, tuple[Any, ...]] = {}
        execute = db.execute

        def recording(sql: str, params: Sequence[Any] = ()) -> list[Any]:
            if "session_id = " in sql:
                seen.setdefault(sql, tuple(params))
            return execute(sql, params)

        with monkeypatch.context() as patch:
            patch.setattr(db, "execute", recording)
            # An outcome named by the session links to its three calls, none of the rest.
            assert record_outcome(db, session, "success", 2.0, None) == 3
            lines = {line.group: line for line in spend_report(db, "feature", start)}
            # Its three calls are one success for their feature (a fresh SQLite file holds
            # no other outcome; the module's PostgreSQL database may).
            successes = lines["support-answer"].successes
            assert successes == 1 if db.dialect == "sqlite" else successes >= 1
        assert len(seen) == 2  # the outcome's linked calls, and the join for cost per success
        # The linked calls are looked up through the index, on both databases. (The join's
        # plan is the planner's to choose by the tables' sizes: from the ledger's time range,
        # probing the outcomes, it needs neither session index, partial or full.)
        (sql, params), *_ = [(q, p) for q, p in seen.items() if "JOIN" not in q]
        if db.dialect == "postgresql":
            db.execute("SET enable_seqscan = off")  # a few rows: a scan would be cheaper
        plan_lines = _plan(db, sql, params)
        assert any(SESSION_PARTIAL in line for line in plan_lines), (sql, plan_lines)
    finally:
        db.close()
