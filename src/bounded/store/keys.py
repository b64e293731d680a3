"""Virtual keys, stored only as SHA-256 hashes.

A key is ``bnd_`` plus 43 random URL-safe characters (256 bits), so a plain SHA-256 is a
sound verifier: there is nothing to brute-force that a slow hash would protect. The
plaintext is shown once, at creation.

    repo = KeyRepository(Database.open(url))
    created, plaintext = repo.create("ci", features=["support-answer"])
    repo.lookup(plaintext)  # -> KeyRecord, or None once revoked or expired
    old, new, plaintext = repo.rotate("ci", grace_s=3600)  # same name, scopes and limits
    repo.revoke(old.id)     # end the grace period early

A name belongs to one active (unrevoked, unexpired) key at a time: ``create`` refuses a name
an active key holds and points at ``rotate``, which replaces the key under the same name.
The only time two active keys share a name is a rotation's grace period, so ``revoke`` and
``rotate`` by a name that matches several refuse and list their ids. Both checks run in the
write's own transaction (``BEGIN IMMEDIATE`` on SQLite, a table lock on PostgreSQL), so two
concurrent ``create`` calls cannot both take a name.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from bounded.errors import InvalidRequest, NotFound
from bounded.store.db import Database, Row

PREFIX = "bnd_"
# Where no data_version tells us of other writers (PostgreSQL), cached lookups expire.
_CACHE_TTL_S = 1.0
# ``rotate``'s default expiry: the new key lives as long as the old one was meant to.
SAME_LIFETIME: Literal["same-lifetime"] = "same-lifetime"
# What a key may read besides calling its features (the admin key may read everything):
# trace metadata and spans, the stored (redacted) prompt and completion text of those
# traces, GET /metrics, and the audit log (GET /v1/audit). Text is its own scope: seeing
# latencies is not seeing what users wrote.
SCOPES = ("traces:read", "traces:read_text", "metrics:read", "audit:read")


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    hint: str
    features: tuple[str, ...]
    teams: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    limits: dict[str, Any] | None = None
    scopes: tuple[str, ...] = ()

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class NameTaken(InvalidRequest):
    """``create`` with a name an active key already holds; ``holders`` are those keys."""

    default_code = "key_name_taken"

    def __init__(self, name: str, holders: list[KeyRecord]):
        ids = ", ".join(r.id for r in holders)
        super().__init__(
            f"an active key is already named {name!r} ({ids}); rotate it to replace it,"
            " or choose another name"
        )
        self.name = name
        self.holders = holders


class AmbiguousKey(InvalidRequest):
    """A name that several active keys share (a rotation's grace period); ``matches``."""

    default_code = "key_name_ambiguous"

    def __init__(self, name: str, matches: list[KeyRecord]):
        ids = ", ".join(r.id for r in matches)
        super().__init__(f"{len(matches)} active keys are named {name!r}; name one by id: {ids}")
        self.name = name
        self.matches = matches


class KeyNotFound(NotFound):
    default_code = "key_not_found"

    def __init__(self, ref: str):
        super().__init__(f"no active key with id or name {ref!r}")
        self.ref = ref


class KeyRepository:
    def __init__(self, db: Database):
        self._db = db
        self._cache: dict[str, KeyRecord | None] = {}
        self._seen_version: int | None = -1
        self._cache_time = 0.0

    @property
    def db(self) -> Database:
        return self._db

    def create(
        self,
        name: str,
        *,
        features: list[str] | None = None,
        teams: list[str] | None = None,
        expires_at: float | None = None,
        limits: dict[str, Any] | None = None,
        scopes: tuple[str, ...] = (),
    ) -> tuple[KeyRecord, str]:
        """Create a key; ``limits`` holds its own ``budget`` and ``rate_limit``, if any;
        ``scopes`` are among :data:`SCOPES`.

        Raises :class:`NameTaken` when an active key already has this name."""
        with self._writing():
            holders = self._active_named(name, time.time())
            if holders:
                raise NameTaken(name, holders)
            return self._insert(
                name, tuple(features or ()), tuple(teams or ()), expires_at, limits, scopes
            )

    def rotate(
        self,
        ref: str,
        *,
        grace_s: float = 0,
        expires_at: float | Literal["same-lifetime"] | None = SAME_LIFETIME,
    ) -> tuple[KeyRecord, KeyRecord, str]:
        """Replace a key (by id, or a name one active key holds) with a new one.

        The new key gets the old one's name, features, teams and limits, and by default its
        lifetime (an old key that lived 30 days gives a new one 30 days from now). The old
        key is revoked now, or with ``grace_s`` keeps working that long (its expiry is moved
        in, never out). Returns ``(old as it is now, new, new plaintext)``."""
        now = time.time()
        with self._writing():
            old = self._resolve(ref, now)
            if expires_at == SAME_LIFETIME:
                lifetime = old.expires_at - old.created_at if old.expires_at else None
                expires_at = now + lifetime if lifetime else None
            if grace_s > 0:
                until = min(now + grace_s, old.expires_at or float("inf"))
                self._db.execute("UPDATE api_keys SET expires_at = ? WHERE id = ?", (until, old.id))
                old = replace(old, expires_at=until)
            else:
                self._db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, old.id))
                old = replace(old, revoked_at=now)
            new, plaintext = self._insert(
                old.name, old.features, old.teams, expires_at, old.limits, old.scopes
            )
        return old, new, plaintext

    def resolve(self, ref: str) -> KeyRecord:
        """The unrevoked key with id ``ref``, else the one active key named ``ref``.

        Raises :class:`KeyNotFound`, or :class:`AmbiguousKey` when several active keys
        share the name."""
        return self._resolve(ref, time.time())

    def revoke(self, ref: str) -> KeyRecord | None:
        """Revoke one key by id or unique name; None when no unrevoked key matches.

        Raises :class:`AmbiguousKey` for a name several active keys share: revoking all
        of them would also kill the replacement a rotation just made."""
        now = time.time()
        with self._writing():
            try:
                record = self._resolve(ref, now)
            except KeyNotFound:
                return None
            self._db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, record.id))
        return replace(record, revoked_at=now)

    def lookup(self, plaintext: str) -> KeyRecord | None:
        """The active record for a presented key, or None.

        Lookups are cached in memory. SQLite's ``data_version`` changes whenever another
        connection (``bounded keys revoke`` in another process) commits, which empties the
        cache, so a revocation takes effect on the next request; on PostgreSQL the cache
        lives at most a second.
        """
        version = self._db.data_version()
        now = time.monotonic()
        if version != self._seen_version or (
            version is None and now - self._cache_time > _CACHE_TTL_S
        ):
            self._cache.clear()
            self._seen_version = version
            self._cache_time = now
        digest = hash_key(plaintext)
        if digest in self._cache:
            record = self._cache[digest]
        else:
            rows = self._db.execute("SELECT * FROM api_keys WHERE key_hash = ?", (digest,))
            record = _record(rows[0]) if rows else None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = record
        if record is None or not record.active(time.time()):
            return None
        return record

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A transaction no other key write interleaves with: check, then write."""
        with self._db.transaction():
            if self._db.dialect == "postgresql":
                # SQLite's BEGIN IMMEDIATE already serialises writers. This mode blocks
                # other writers of api_keys, never the gateway's lookups (plain reads).
                self._db.execute("LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE")
            yield

    def _active_named(self, name: str, now: float) -> list[KeyRecord]:
        rows = self._db.execute(
            "SELECT * FROM api_keys WHERE name = ? AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at",
            (name, now),
        )
        return [_record(row) for row in rows]

    def _resolve(self, ref: str, now: float) -> KeyRecord:
        rows = self._db.execute(
            "SELECT * FROM api_keys WHERE id = ? AND revoked_at IS NULL", (ref,)
        )
        if rows:
            return _record(rows[0])
        matches = self._active_named(ref, now)
        if not matches:
            raise KeyNotFound(ref)
        if len(matches) > 1:
            raise AmbiguousKey(ref, matches)
        return matches[0]

    def _insert(
        self,
        name: str,
        features: tuple[str, ...],
        teams: tuple[str, ...],
        expires_at: float | None,
        limits: dict[str, Any] | None,
        scopes: tuple[str, ...] = (),
    ) -> tuple[KeyRecord, str]:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise InvalidRequest(
                f"unknown scope {', '.join(unknown)}; scopes are {', '.join(SCOPES)}",
                code="unknown_scope",
            )
        plaintext = PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(
            id=secrets.token_hex(6),
            name=name,
            hint=f"{plaintext[:8]}…{plaintext[-4:]}",
            features=features,
            teams=teams,
            created_at=time.time(),
            expires_at=expires_at,
            revoked_at=None,
            limits=limits,
            scopes=tuple(scopes),
        )
        self._db.execute(
            "INSERT INTO api_keys (id, name, key_hash, hint, features, teams, limits,"
            " created_at, expires_at, scopes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                name,
                hash_key(plaintext),
                record.hint,
                json.dumps(record.features),
                json.dumps(record.teams),
                json.dumps(limits) if limits else None,
                record.created_at,
                expires_at,
                json.dumps(record.scopes) if scopes else None,
            ),
        )
        return record, plaintext

    # Last in the class: below this, ``list`` in an annotation would mean this method.
    def list(self) -> list[KeyRecord]:
        rows = self._db.execute("SELECT * FROM api_keys ORDER BY created_at")
        return [_record(row) for row in rows]


def _record(row: Row) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        hint=row["hint"],
        features=tuple(json.loads(row["features"])),
        teams=tuple(json.loads(row["teams"])),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        limits=json.loads(row["limits"]) if row["limits"] else None,
        scopes=tuple(json.loads(row["scopes"])) if row["scopes"] else (),
    )
