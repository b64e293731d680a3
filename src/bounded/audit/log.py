"""The append-only audit log (table ``audit_log``, migration 0005).

Only inserts and reads are offered here, and the database refuses the rest itself:
triggers abort any UPDATE or DELETE (and TRUNCATE on PostgreSQL), so a hand-typed query
cannot rewrite history either. A change and its audit entry are written in one
transaction where the change is ours (:func:`record_in` inside ``db.transaction()``), so
there is never a change without its entry, nor an entry for a change that was rolled back.

``detail`` is a small JSON object saying what changed (a label's old and new version, a
key's name and features): never a secret, a key, or a prompt's variables.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bounded.errors import InvalidRequest
from bounded.store.db import Database

MAX_ACTION_CHARS = 64
MAX_TEXT_CHARS = 1024
MAX_DETAIL_BYTES = 16_384
DEFAULT_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts: float
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
        }


class AuditLog:
    """Insert and read audit entries; nothing else."""

    def __init__(self, db: Database):
        self.db = db

    def record(
        self,
        action: str,
        subject: str,
        *,
        actor: str,
        detail: Mapping[str, Any] | None = None,
        ts: float | None = None,
    ) -> None:
        """Append one entry (its own transaction). Inside a ``db.transaction()`` of the
        change it describes, call :func:`record_in` instead: one commit for both."""
        record_in(self.db, action, subject, actor=actor, detail=detail, ts=ts)

    def entries(
        self,
        *,
        since: float | None = None,
        action: str | None = None,
        subject: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuditEntry]:
        """Entries oldest first. ``action`` matches exactly or as a prefix ending at a
        dot (``prompt`` finds ``prompt.push`` and ``prompt.label``)."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if action:
            where.append("(action = ? OR substr(action, 1, ?) = ?)")
            params += [action, len(action) + 1, action + "."]
        if subject:
            where.append("subject = ?")
            params.append(subject)
        # The newest `limit` entries, shown oldest first: a tail, like a log.
        rows = self.db.execute(
            "SELECT id, ts, actor, action, subject, detail FROM audit_log"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            (*params, max(1, min(limit, 100_000))),
        )
        return [_entry(row) for row in reversed(rows)]


def record_in(
    db: Database,
    action: str,
    subject: str,
    *,
    actor: str,
    detail: Mapping[str, Any] | None = None,
    ts: float | None = None,
) -> None:
    """Append one entry on ``db`` as it stands (inside the caller's transaction if any)."""
    _check("action", action, MAX_ACTION_CHARS)
    _check("subject", subject, MAX_TEXT_CHARS)
    _check("actor", actor, MAX_TEXT_CHARS)
    encoded = orjson.dumps(dict(detail or {}), default=str).decode()
    if len(encoded) > MAX_DETAIL_BYTES:
        raise InvalidRequest(
            f"audit detail is {len(encoded)} bytes; the most an entry takes is {MAX_DETAIL_BYTES}",
            param="detail",
        )
    db.execute(
        "INSERT INTO audit_log (ts, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        (time.time() if ts is None else ts, actor, action, subject, encoded),
    )


def actor_from_env() -> str:
    """Who is at the keyboard: ``$BOUNDED_ACTOR`` (CI sets it to the pipeline or the
    person it runs for), else the login name."""
    given = os.environ.get("BOUNDED_ACTOR", "").strip()
    if given:
        return given[:MAX_TEXT_CHARS]
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return "unknown"


def _check(field: str, value: str, limit: int) -> None:
    if not value or len(value) > limit or "\x00" in value:
        raise InvalidRequest(
            f"audit {field} must be 1 to {limit} characters without NUL", param=field
        )


def _entry(row: Any) -> AuditEntry:
    detail = orjson.loads(row["detail"]) if row["detail"] else {}
    return AuditEntry(
        int(row["id"]), float(row["ts"]), row["actor"], row["action"], row["subject"], detail
    )
