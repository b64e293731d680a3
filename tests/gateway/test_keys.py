"""Virtual keys: stored as hashes, scoped to features and teams, expiring, revocable."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from bounded.errors import Unauthenticated
from bounded.gateway.auth import Authenticator
from bounded.store import keys as keys_module
from bounded.store.db import Database
from bounded.store.keys import AmbiguousKey, KeyRepository, NameTaken, hash_key

CONFIG: dict[str, Any] = {
    "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": {"m1": {"provider": "up", "model": "x"}},
    "features": {
        "support": {"owner": "support-team", "route": {"targets": ["m1"]}},
        "billing": {"owner": "billing-team", "route": {"targets": ["m1"]}},
    },
}


class Clock:
    """Stands in for the ``time`` module inside bounded.store.keys, the gateway's lookups
    included: an expiry or a grace period passes when the test moves it, never because a
    busy machine was slow between two requests."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(keys_module, "time", fake)
    return fake


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


def test_expired_key_is_refused(gateway_factory: Any, keys: KeyRepository, clock: Clock) -> None:
    _, key = keys.create("short", expires_at=clock.now + 0.5)
    with gateway_factory(CONFIG) as (base, _):
        assert call(base, key, "support").status_code == 502
        clock.now += 0.6
        assert call(base, key, "support").status_code == 401


def test_dev_key_only_from_loopback(keys: KeyRepository) -> None:
    auth = Authenticator(keys, admin_key=None, dev_key="bnd_dev_secret")
    assert auth.authenticate("Bearer bnd_dev_secret", "127.0.0.1").admin
    assert auth.authenticate("Bearer bnd_dev_secret", "::1").admin
    with pytest.raises(Unauthenticated, match="loopback"):
        auth.authenticate("Bearer bnd_dev_secret", "192.0.2.10")


def test_revoke_unknown_key_reports_none(keys: KeyRepository) -> None:
    assert keys.revoke("does-not-exist") is None


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


# -- names and rotation ---------------------------------------------------------------------


def test_a_name_belongs_to_one_active_key(keys: KeyRepository) -> None:
    first, _ = keys.create("billing-bot", features=["support"])
    with pytest.raises(NameTaken, match="rotate") as refused:
        keys.create("billing-bot")
    assert [r.id for r in refused.value.holders] == [first.id]
    assert [r.id for r in keys.list()] == [first.id]  # nothing written
    assert keys.revoke("billing-bot") is not None
    again, _ = keys.create("billing-bot")  # a revoked key's name is free again
    assert again.id != first.id


def test_an_expired_key_frees_its_name(keys: KeyRepository) -> None:
    keys.create("nightly", expires_at=time.time() + 0.2)
    time.sleep(0.3)
    record, _ = keys.create("nightly")
    assert keys.resolve("nightly").id == record.id


def test_revoke_by_name_revokes_only_that_key(keys: KeyRepository) -> None:
    kept, kept_key = keys.create("search-svc")
    gone, gone_key = keys.create("billing-svc")
    revoked = keys.revoke("billing-svc")
    assert revoked is not None and revoked.id == gone.id and revoked.revoked_at
    assert keys.lookup(gone_key) is None
    assert keys.lookup(kept_key) is not None and kept.id == keys.resolve("search-svc").id


def test_rotate_keeps_name_scopes_limits_and_lifetime(
    gateway_factory: Any, keys: KeyRepository, store_url: str
) -> None:
    limits = {"rate_limit": {"rpm": 60, "tpm": None}}
    old, old_key = keys.create(
        "svc",
        features=["support"],
        teams=["billing-team"],
        limits=limits,
        expires_at=time.time() + 30 * 86400,
    )
    with gateway_factory(CONFIG) as (base, _):
        assert call(base, old_key, "support").status_code == 502
        # As `bounded keys rotate` does from another process: its own connection.
        other = Database.open(store_url)
        before, new, new_key = KeyRepository(other).rotate("svc")
        other.close()
        assert before.id == old.id and before.revoked_at is not None
        assert (new.name, new.features, new.teams, new.limits) == (
            "svc",
            ("support",),
            ("billing-team",),
            limits,
        )
        assert new.expires_at is not None
        assert new.expires_at - new.created_at == pytest.approx(30 * 86400, abs=1)
        assert call(base, old_key, "support").status_code == 401
        assert call(base, new_key, "support").status_code == 502  # allowed; upstream down
        assert call(base, new_key, "billing").status_code == 502  # the team scope kept
    assert keys.resolve("svc").id == new.id  # the name now means the new key alone


def test_rotate_with_grace_keeps_the_old_key_until_it_expires(
    keys: KeyRepository, clock: Clock
) -> None:
    old, old_key = keys.create("svc")
    before, new, new_key = keys.rotate("svc", grace_s=0.5)
    assert before.revoked_at is None and before.expires_at is not None
    assert new.expires_at is None  # the old key never expired, nor does the new one
    assert keys.lookup(old_key) is not None and keys.lookup(new_key) is not None
    # Two active keys share the name for now: by name is ambiguous, by id is not.
    with pytest.raises(AmbiguousKey) as ambiguous:
        keys.revoke("svc")
    assert {r.id for r in ambiguous.value.matches} == {old.id, new.id}
    assert old.id in str(ambiguous.value) and new.id in str(ambiguous.value)
    with pytest.raises(AmbiguousKey):
        keys.rotate("svc")
    with pytest.raises(NameTaken):
        keys.create("svc")
    assert keys.lookup(old_key) is not None  # the refusals changed nothing
    clock.now += 0.6
    assert keys.lookup(old_key) is None
    assert keys.lookup(new_key) is not None
    assert keys.resolve("svc").id == new.id


def test_revoke_by_id_ends_a_grace_period_early(keys: KeyRepository) -> None:
    old, old_key = keys.create("svc")
    _, _, new_key = keys.rotate(old.id, grace_s=3600)
    assert keys.revoke(old.id) is not None
    assert keys.lookup(old_key) is None and keys.lookup(new_key) is not None


def test_grace_never_extends_an_expiry(keys: KeyRepository) -> None:
    soon = time.time() + 60
    keys.create("svc", expires_at=soon)
    before, _, _ = keys.rotate("svc", grace_s=3600)
    assert before.expires_at == soon


def test_duplicate_names_left_by_older_versions_refuse_revoke_by_name(
    keys: KeyRepository, db: Database
) -> None:
    keys.create("legacy")
    second, _ = keys.create("legacy-tmp")
    db.execute("UPDATE api_keys SET name = 'legacy' WHERE id = ?", (second.id,))
    with pytest.raises(AmbiguousKey):
        keys.revoke("legacy")
    assert all(r.revoked_at is None for r in keys.list())


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_concurrent_creates_of_one_name_admit_one(
    engine: str, store_url: str, request: pytest.FixtureRequest
) -> None:
    url = store_url if engine == "sqlite" else request.getfixturevalue("postgres_url")
    Database.open(url).close()  # migrate once, before the race
    dbs = [Database.open(url, migrate=False) for _ in range(8)]
    repos = [KeyRepository(db) for db in dbs]
    start = threading.Barrier(len(repos))
    outcomes: list[str] = []

    def create(repo: KeyRepository) -> None:
        start.wait()
        try:
            repo.create("race")
            outcomes.append("created")
        except NameTaken:
            outcomes.append("refused")

    threads = [threading.Thread(target=create, args=(r,)) for r in repos]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert sorted(outcomes) == ["created"] + ["refused"] * (len(repos) - 1)
        assert len([r for r in repos[0].list() if r.name == "race"]) == 1
    finally:
        for db in dbs:
            db.close()
