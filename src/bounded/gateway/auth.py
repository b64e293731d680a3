"""Who is calling: a bearer key becomes a Principal, or the request gets a 401/403.

Three kinds of key: the admin key from ``BOUNDED_ADMIN_KEY`` (everything), the development
key printed by ``bounded serve`` (everything, but only from loopback addresses), and virtual
keys from the store (scoped to features and teams).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bounded.errors import PermissionDenied, Unauthenticated
from bounded.gateway.runtime import Target
from bounded.store.keys import KeyRepository


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    features: tuple[str, ...] = ("*",)
    teams: tuple[str, ...] = ()
    admin: bool = False
    limits: dict[str, Any] | None = None
    scopes: tuple[str, ...] = ()  # see bounded.store.keys.SCOPES; the admin has them all

    def may(self, scope: str) -> bool:
        return self.admin or scope in self.scopes

    def may_use(self, target: Target) -> bool:
        if self.admin or "*" in self.features or target.name in self.features:
            return True
        return target.team is not None and target.team in self.teams

    def may_embed(self, model: str) -> bool:
        """Embedding models have no team: a key needs them by name (or all, ``*``)."""
        return self.admin or "*" in self.features or model in self.features

    def check(self, target: Target) -> None:
        if not self.may_use(target):
            raise PermissionDenied(
                f"key {self.name!r} may not use {target.name!r}; "
                "create a key with --feature or --team that covers it"
            )


ADMIN = Principal("admin", "admin", admin=True)
DEV = Principal("dev", "development key", admin=True)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def load_or_create_dev_key(state_dir: Path) -> str:
    """The same development key across restarts, kept in the state folder (mode 0600)."""
    path = state_dir / "dev-key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    state_dir.mkdir(parents=True, exist_ok=True)
    key = "bnd_dev_" + secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


class Authenticator:
    def __init__(self, keys: KeyRepository, admin_key: str | None, dev_key: str | None):
        self._keys = keys
        self._admin = admin_key.encode() if admin_key else None
        self._dev = dev_key.encode() if dev_key else None

    def authenticate(self, authorization: str | None, client_host: str | None) -> Principal:
        token = _bearer(authorization)
        raw = token.encode()
        if self._admin is not None and hmac.compare_digest(raw, self._admin):
            return ADMIN
        if self._dev is not None and hmac.compare_digest(raw, self._dev):
            if not is_loopback(client_host):
                raise Unauthenticated("the development key is accepted only from loopback")
            return DEV
        record = self._keys.lookup(token)
        if record is None:
            raise Unauthenticated("invalid, revoked or expired API key")
        features = record.features or (() if record.teams else ("*",))
        return Principal(
            record.id,
            record.name,
            features,
            record.teams,
            limits=record.limits,
            scopes=record.scopes,
        )


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated(
            "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("malformed Authorization header: expected 'Bearer <key>'")
    return token.strip()
