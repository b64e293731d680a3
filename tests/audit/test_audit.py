"""The audit log: append-only in the database itself (SQLite and PostgreSQL), readable
through `bounded audit` and `GET /v1/audit` (admin key), fed by keys, prompts and reloads."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from bounded.audit import AuditLog
from bounded.cli.main import app
from bounded.errors import InvalidRequest
from bounded.gateway.app import Gateway
from bounded.store.db import Database
from tests.conftest import ADMIN_KEY, make_config


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database.open(url)
    yield db
    db.close()


def test_entries_can_be_added_and_never_changed(any_db: Database) -> None:
    log = AuditLog(any_db)
    start = time.time()
    log.record("release.start", "support", actor="ana", detail={"canary": 0.05})
    log.record("release.decision", "support", actor="evaluator", detail={"verdict": "rollback"})
    log.record("key.revoke", "k123", actor="bo")
    for sql in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            any_db.execute(sql)
    mine = [e for e in log.entries(since=start) if e.subject in ("support", "k123")]
    assert [(e.action, e.actor) for e in mine][-3:] == [
        ("release.start", "ana"),
        ("release.decision", "evaluator"),
        ("key.revoke", "bo"),
    ]
    releases = log.entries(since=start, action="release")  # a prefix ends at a dot
    assert {e.action for e in releases} == {"release.start", "release.decision"}
    assert log.entries(since=start, action="releas") == []
    assert log.entries(since=start, subject="k123")[0].detail == {}


def test_bad_entries_are_refused_whole(any_db: Database) -> None:
    log = AuditLog(any_db)
    before = len(log.entries())
    with pytest.raises(InvalidRequest):
        log.record("", "x", actor="ana")
    with pytest.raises(InvalidRequest, match="bytes"):
        log.record("note.add", "x", actor="ana", detail={"text": "x" * 20_000})
    assert len(log.entries()) == before


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def write_config(tmp_path: Path, features: dict[str, Any]) -> Path:
    path = tmp_path / "bounded.yaml"
    data = {
        "server": {"store": f"sqlite:///{tmp_path / 'b.db'}"},
        "providers": {
            "up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "x"}
        },
        "models": {"m1": {"provider": "up", "model": "stub"}},
        "features": features,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def test_keys_and_the_audit_command(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"support": {"owner": "ana", "route": {"targets": ["m1"]}}})
    env = {"BOUNDED_ACTOR": "ana@example.com"}
    created = cli("keys", "create", "billing", "--config", str(path), env=env)
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert cli("keys", "revoke", "billing", "--config", str(path), env=env).exit_code == 0
    shown = cli("audit", "--since", "1h", "--json", "--config", str(path))
    assert shown.exit_code == 0, shown.output
    entries = [json.loads(line) for line in shown.output.splitlines()]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("key.create", "ana@example.com"),
        ("key.revoke", "ana@example.com"),
    ]
    assert entries[0]["detail"]["name"] == "billing"
    assert secret not in shown.output  # a key's plaintext is never in the log
    table = cli("audit", "--action", "key", "--config", str(path))
    assert "key.revoke" in table.output
    bad = cli("audit", "--since", "last tuesday", "--config", str(path))
    assert bad.exit_code == 1 and "30m, 24h" in bad.output


def test_the_api_needs_the_admin_key_and_reloads_are_recorded(tmp_path: Path) -> None:
    features = {"support": {"owner": "ana", "route": {"targets": ["m1"]}}}
    path = write_config(tmp_path, features)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    db = Database.open(url)
    cfg = make_config(yaml.safe_load(path.read_text()), url)
    gw = Gateway(cfg, db=db, admin_key=ADMIN_KEY, config_path=path)
    features["other"] = {"owner": "bo", "route": {"targets": ["m1"]}}
    write_config(tmp_path, features)
    assert asyncio.run(gw.reload())
    path.write_text("features: [not, a, mapping]\n")
    assert not asyncio.run(gw.reload())
    _, plaintext = gw.keys.create("reader", features=["*"])

    async def get(query: str, key: str | None) -> httpx.Response:
        transport = httpx.ASGITransport(app=gw.app())
        headers = {"authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get(f"/v1/audit{query}", headers=headers)

    ok = asyncio.run(get("?action=config", ADMIN_KEY))
    assert ok.status_code == 200, ok.text
    actions = [(e["action"], e["subject"]) for e in ok.json()["data"]]
    assert actions == [("config.reload", str(path)), ("config.reload_rejected", str(path))]
    assert ok.json()["data"][0]["detail"]["features"] == ["other", "support"]
    assert asyncio.run(get("", None)).status_code == 401
    forbidden = asyncio.run(get("", plaintext))
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "scope_required"
    bad = asyncio.run(get("?since=yesterday", ADMIN_KEY))
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "since"
    db.close()
