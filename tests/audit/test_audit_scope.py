"""`GET /v1/audit` for a key with the `audit:read` scope, and a 403 for one without."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import yaml
from typer.testing import CliRunner

from bounded.audit import AuditLog
from bounded.cli.main import app
from bounded.gateway.app import Gateway
from bounded.store.db import Database
from tests.conftest import ADMIN_KEY, make_config


def test_the_audit_read_scope_opens_the_audit_log_and_nothing_else_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    data = {
        "server": {"store": url},
        "providers": {
            "up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "x"}
        },
        "models": {"m1": {"provider": "up", "model": "stub"}},
        "features": {"support": {"owner": "ana", "route": {"targets": ["m1"]}}},
    }
    path = tmp_path / "bounded.yaml"
    path.write_text(yaml.safe_dump(data))
    runner = CliRunner()
    # The CLI knows the scope (and still refuses one that does not exist).
    created = runner.invoke(app, ["keys", "create", "auditor", "-s", "audit:read", "-c", str(path)])
    assert created.exit_code == 0, created.output
    auditor = created.output.strip().splitlines()[-1]
    wrong = runner.invoke(app, ["keys", "create", "x", "-s", "audit:write", "-c", str(path)])
    assert wrong.exit_code == 1 and "audit:read" in wrong.output

    db = Database.open(url)
    AuditLog(db).record("release.start", "support", actor="ana", detail={"mode": "shadow"})
    gw = Gateway(make_config(data, url), db=db, admin_key=ADMIN_KEY)
    _, tracer = gw.keys.create("oncall", features=["*"], scopes=("traces:read", "metrics:read"))

    async def get(key: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=gw.app())
        headers = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get("/v1/audit?action=release", headers=headers)

    try:
        allowed = asyncio.run(get(auditor))
        assert allowed.status_code == 200, allowed.text
        assert [e["action"] for e in allowed.json()["data"]] == ["release.start"]
        assert asyncio.run(get(ADMIN_KEY)).status_code == 200  # the admin key keeps it all
        refused = asyncio.run(get(tracer))
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["type"] == "permission_error" and error["code"] == "scope_required"
        assert "lacks the audit:read scope" in error["message"]
        assert "bounded keys create NAME --scope audit:read" in error["message"]
        assert set(error) == {"message", "type", "param", "code"}
    finally:
        gw.dashboard.close()
        gw.reader.close()
        db.close()
