"""Virtual keys: stored as hashes, scoped to features and teams, expiring, revocable."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from bounded.errors import Unauthenticated
from bounded.gateway.auth import Authenticator
from bounded.store.db import Database
from bounded.store.keys import KeyRepository, hash_key

CONFIG: dict[str, Any] = {
    "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"m1": {"provider": "up", "model": "x"}},
    "features": {
        "support": {"owner": "support-team", "route": {"targets": ["m1"]}},
        "billing": {"owner": "billing-team", "route": {"targets": ["m1"]}},
    },
}


def call(base: str, key: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        f"{base}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )


def test_keys_are_stored_only_as_hashes(keys: KeyRepository, store_url: str) -> None:
    _, plaintext = keys.create("svc")
    raw = Database.open(store_url).execute("SELECT * FROM api_keys")
    assert plaintext not in repr([tuple(r) for r in raw])
    assert raw[0]["key_hash"] == hash_key(plaintext)


def test_feature_scope_allows_its_feature_and_refuses_others(
    gateway_factory: Any, keys: KeyRepository
) -> None:
    _, key = keys.create("svc", features=["support"])
    with gateway_factory(CONFIG) as (base, _):
        assert call(base, key, "support").status_code == 502  # allowed; upstream is down
        denied = call(base, key, "billing")
        assert denied.status_code == 403
        assert denied.json()["error"]["type"] == "permission_error"
        assert call(base, key, "m1").status_code == 403
        listed = httpx.get(f"{base}/v1/models", headers={"authorization": f"Bearer {key}"})
        assert [m["id"] for m in listed.json()["data"]] == ["support"]


def test_team_scope_covers_the_features_the_team_owns(
    gateway_factory: Any, keys: KeyRepository
) -> None:
    _, key = keys.create("billing-svc", teams=["billing-team"])
    with gateway_factory(CONFIG) as (base, _):
        assert call(base, key, "billing").status_code == 502
        assert call(base, key, "support").status_code == 403


def test_revocation_from_another_connection_applies_on_the_next_request(
    gateway_factory: Any, keys: KeyRepository, store_url: str
) -> None:
    record, key = keys.create("svc")
    with gateway_factory(CONFIG) as (base, _):
        assert call(base, key, "support").status_code == 502
        # As `bounded keys revoke` does from another process: its own connection.
        assert KeyRepository(Database.open(store_url)).revoke(record.id)
        resp = call(base, key, "support")
        assert resp.status_code == 401
        assert "revoked" in resp.json()["error"]["message"]


def test_expired_key_is_refused(gateway_factory: Any, keys: KeyRepository) -> None:
    _, key = keys.create("short", expires_at=time.time() + 0.5)
    with gateway_factory(CONFIG) as (base, _):
        assert call(base, key, "support").status_code == 502
        time.sleep(0.6)
        assert call(base, key, "support").status_code == 401


def test_dev_key_only_from_loopback(keys: KeyRepository) -> None:
    auth = Authenticator(keys, admin_key=None, dev_key="bnd_dev_secret")
    assert auth.authenticate("Bearer bnd_dev_secret", "127.0.0.1").admin
    assert auth.authenticate("Bearer bnd_dev_secret", "::1").admin
    with pytest.raises(Unauthenticated, match="loopback"):
        auth.authenticate("Bearer bnd_dev_secret", "192.0.2.10")


def test_revoke_unknown_key_reports_false(keys: KeyRepository) -> None:
    assert keys.revoke("does-not-exist") is False


def test_embedding_models_need_the_key_to_name_them(
    gateway_factory: Any, keys: KeyRepository
) -> None:
    config = {
        **CONFIG,
        "models": {
            **CONFIG["models"],
            "emb": {"provider": "up", "model": "e", "kind": "embedding"},
        },
    }
    _, scoped = keys.create("svc", features=["support"])
    _, allowed = keys.create("embedder", features=["emb"])
    with gateway_factory(config) as (base, _):
        body = {"model": "emb", "input": "hello"}
        denied = httpx.post(
            f"{base}/v1/embeddings", json=body, headers={"authorization": f"Bearer {scoped}"}
        )
        assert denied.status_code == 403
        listed = httpx.get(f"{base}/v1/models", headers={"authorization": f"Bearer {scoped}"})
        assert "emb" not in [m["id"] for m in listed.json()["data"]]
        passed = httpx.post(
            f"{base}/v1/embeddings", json=body, headers={"authorization": f"Bearer {allowed}"}
        )
        assert passed.status_code == 502  # allowed through; its upstream is down
