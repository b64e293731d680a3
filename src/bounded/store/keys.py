"""Virtual keys, stored only as SHA-256 hashes.

A key is ``bnd_`` plus 43 random URL-safe characters (256 bits), so a plain SHA-256 is a
sound verifier: there is nothing to brute-force that a slow hash would protect. The
plaintext is shown once, at creation.

    repo = KeyRepository(Database.open(url))
    created, plaintext = repo.create("ci", features=["support-answer"])
    repo.lookup(plaintext)  # -> KeyRecord, or None once revoked or expired
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from bounded.store.db import Database, Row

PREFIX = "bnd_"
# Where no data_version tells us of other writers (PostgreSQL), cached lookups expire.
_CACHE_TTL_S = 1.0


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

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class KeyRepository:
    def __init__(self, db: Database):
        self._db = db
        self._cache: dict[str, KeyRecord | None] = {}
        self._seen_version: int | None = -1
        self._cache_time = 0.0

    def create(
        self,
        name: str,
        *,
        features: list[str] | None = None,
        teams: list[str] | None = None,
        expires_at: float | None = None,
        limits: dict[str, Any] | None = None,
    ) -> tuple[KeyRecord, str]:
        """Create a key; ``limits`` holds its own ``budget`` and ``rate_limit``, if any."""
        plaintext = PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(
            id=secrets.token_hex(6),
            name=name,
            hint=f"{plaintext[:8]}…{plaintext[-4:]}",
            features=tuple(features or ()),
            teams=tuple(teams or ()),
            created_at=time.time(),
            expires_at=expires_at,
            revoked_at=None,
            limits=limits,
        )
        self._db.execute(
            "INSERT INTO api_keys (id, name, key_hash, hint, features, teams, limits,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )
        return record, plaintext

    def list(self) -> list[KeyRecord]:
        rows = self._db.execute("SELECT * FROM api_keys ORDER BY created_at")
        return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        changed = self._db.execute_count(
            "UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL",
            (time.time(), key_id, key_id),
        )
        return changed > 0

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
    )
