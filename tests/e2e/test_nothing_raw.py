"""Nothing raw is written: seeded personal data and secrets, sent through every endpoint of a
real ``bounded serve``, appear in no file the run wrote (store, WAL, collections, log).

The server logs at INFO here, so even client mistakes are written down; the stand-in
upstream fails some calls on purpose and quotes the prompt in its error, as real
upstreams sometimes do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response

from tests.e2e.server import ADMIN_KEY, BoundedServer
from tests.standins.faulty_upstream import FaultyUpstream, embedded, ok

SEEDS = {
    "email": "zelda.quartermaine@example.org",
    "phone": "+1 415 555 0199",
    "card": "4539 1488 0343 6467",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ssn": "536-22-8714",
    "github": "ghp_" + "Zq8Lm2Wx4Vb6Nt1Ry3Pk5Hj7Gf9Dd0Ss2Aa4",
    "aws": "AKIA" + "QWERTYUIOP2QWERT",
}
LEAKY = "; ".join(SEEDS.values())
PERSONAL = "; ".join(v for k, v in SEEDS.items() if k not in ("github", "aws"))
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


def quoting_error() -> Any:
    """An upstream 400 whose message quotes the prompt back."""

    async def behave(request: Request, body: dict[str, Any]) -> Response:
        prompt = body["messages"][-1]["content"]
        error = {"error": {"message": f"cannot process: {prompt}", "type": "invalid_request"}}
        return Response(orjson.dumps(error), status_code=400, media_type="application/json")

    return behave


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[BoundedServer, FaultyUpstream]]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Refunds\n\nRefunds take five days.\n")
    with FaultyUpstream().running() as upstream:
        upstream.always("m", ok("Noted."))
        upstream.always("bad", quoting_error())
        upstream.always("e", embedded())
        up = {"kind": "openai", "base_url": upstream.base_url, "api_key": "sk-standin"}
        data = {
            "server": {"log_level": "info"},
            "providers": {"up": up},
            "models": {
                "m": {"provider": "up", "model": "m"},
                "bad": {"provider": "up", "model": "bad"},
                "emb": {"provider": "up", "model": "e", "kind": "embedding"},
            },
            "features": {
                "guarded": {"owner": "t", "risk_tier": "high", "route": {"targets": ["m"]}},
                "plain": {"owner": "t", "route": {"targets": ["m"]}},
                "quoting": {"owner": "t", "route": {"targets": ["bad"]}},
            },
            "collections": {
                "kb": {"sources": [{"kind": "folder", "path": str(docs)}], "embedding": "none"}
            },
        }
        folder = tmp_path / "srv"
        with BoundedServer.start(folder, data) as srv:
            yield srv, upstream


def test_seeded_pii_and_secrets_reach_no_file(
    server: tuple[BoundedServer, FaultyUpstream], tmp_path: Path
) -> None:
    srv, upstream = server
    base = srv.url
    session = {**AUTH, "x-bounded-session": SEEDS["email"]}
    chat = base + "/v1/chat/completions"
    with httpx.Client(timeout=30) as http:
        assert http.post(f"{base}/v1/collections/kb/sync", headers=AUTH).status_code == 200
        sent = [
            http.post(chat, headers=session, json=_ask("guarded", PERSONAL)),
            http.post(chat, headers=session, json=_ask("plain", LEAKY)),
            http.post(chat, headers=session, json={**_ask("plain", LEAKY), "stream": True}),
            http.post(chat, headers=session, json=_ask("quoting", LEAKY)),
            http.post(chat, headers=AUTH, json=_ask(SEEDS["email"], "hi")),  # unknown model
            http.post(chat, headers=AUTH, json={**_ask("plain", "x"), "user": SEEDS["ssn"]}),
            http.post(chat, headers=AUTH, json={**_ask("plain", "x"), "temperature": LEAKY}),
            http.post(chat, headers={"authorization": f"Bearer {SEEDS['github']}"}, json={}),
            http.post(
                f"{base}/v1/embeddings", headers=session, json={"model": "emb", "input": LEAKY}
            ),
            http.post(
                f"{base}/v1/outcomes",
                headers=AUTH,
                json={"trace_id": SEEDS["email"], "outcome": "success"},
            ),
            http.post(
                f"{base}/v1/guards/check", headers=AUTH, json={"text": LEAKY, "feature": "guarded"}
            ),
            http.post(f"{base}/v1/collections/kb/search", headers=AUTH, json={"query": LEAKY}),
            http.post(chat, headers=session, json=_ask("guarded", LEAKY)),  # secrets: refused
        ]
    statuses = [r.status_code for r in sent]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 400 and statuses[4] == 404 and statuses[7] == 401
    assert statuses[9] == 201  # the outcome still finds its session, stored hashed
    assert statuses[12] == 400
    # The guarded feature's model never saw the values; the plain one did (by design).
    guarded_prompt = upstream.received[0].body["messages"][-1]["content"]
    assert not [name for name, value in SEEDS.items() if value in guarded_prompt]
    srv.stop()

    written = [p for p in srv.config_path.parent.rglob("*") if p.is_file()]
    written = [p for p in written if p != srv.config_path]
    assert any(p.name == "bounded.db" for p in written)
    leaks = {
        f"{name} in {path.relative_to(tmp_path)}"
        for path in written
        for name, value in SEEDS.items()
        if _contains(path.read_bytes(), value)
    }
    assert not leaks, sorted(leaks)
    # Trace text was stored (the plain feature's, redacted), so the scan above covered it.
    (store,) = [p for p in written if p.name == "bounded-traces.db"]
    conn = sqlite3.connect(store)
    try:
        kept = conn.execute("SELECT prompt, completion FROM trace_texts").fetchall()
    finally:
        conn.close()
    assert any("<EMAIL_1>" in (prompt or "") for prompt, _ in kept), kept


def _ask(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def _contains(data: bytes, value: str) -> bool:
    """Raw, or with the separators of a phone or card number taken out."""
    compact = "".join(value.split()).replace("-", "")
    return value.encode() in data or (len(compact) > 8 and compact.encode() in data)
