"""Virtual keys, stored only as SHA-256 hashes.

A key is ``bnd_`` plus 43 random URL-safe characters (256 bits), so a plain SHA-256 is a
sound verifier: there is nothing to brute-force that a slow hash would protect. The
plaintext is shown once, at creation.

    repo = KeyRepository(connect(url, MIGRATIONS))
    created, plaintext = repo.create("ci", features=["support-answer"])
    repo.lookup(plaintext)  # -> KeyRecord, or None once revoked or expired
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass

from bounded.store.sqlite import Migration

PREFIX = "bnd_"


def _create_keys(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            features TEXT NOT NULL,
            teams TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL
        )"""
    )


MIGRATIONS: list[tuple[str, Migration]] = [("0001_api_keys", _create_keys)]


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

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class KeyRepository:
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._cache: dict[str, KeyRecord | None] = {}
        self._seen_version = -1

    def create(
        self,
        name: str,
        *,
        features: list[str] | None = None,
        teams: list[str] | None = None,
        expires_at: float | None = None,
    ) -> tuple[KeyRecord, str]:
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
        )
        self._conn.execute(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (record.id, name, hash_key(plaintext), record.hint, json.dumps(record.features),
             json.dumps(record.teams), record.created_at, expires_at),
        )
        return record, plaintext

    def list(self) -> list[KeyRecord]:
        rows = self._conn.execute("SELECT * FROM api_keys ORDER BY created_at").fetchall()
        return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        cur = self._conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL",
            (time.time(), key_id, key_id),
        )
        return cur.rowcount > 0

    def lookup(self, plaintext: str) -> KeyRecord | None:
        """The active record for a presented key, or None.

        Lookups are cached in memory; SQLite's ``data_version`` changes whenever another
        connection (``bounded keys revoke`` in another process) commits, which empties the
        cache, so a revocation takes effect on the next request.
        """
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._seen_version:
            self._cache.clear()
            self._seen_version = version
        digest = hash_key(plaintext)
        if digest in self._cache:
            record = self._cache[digest]
        else:
            row = self._conn.execute(
                "SELECT * FROM api_keys WHERE key_hash = ?", (digest,)
            ).fetchone()
            record = _record(row) if row else None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = record
        if record is None or not record.active(time.time()):
            return None
        return record


def _record(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        hint=row["hint"],
        features=tuple(json.loads(row["features"])),
        teams=tuple(json.loads(row["teams"])),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )
