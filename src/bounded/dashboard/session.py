"""Dashboard login: an admin key becomes a signed session cookie; forms carry a CSRF token.

    sessions = Sessions(secret_from(admin_key))
    cookie = sessions.issue("admin")          # Set-Cookie: bounded_ui=<cookie>
    who = sessions.read(request)              # None when missing, forged or expired
    sessions.csrf(request) == form["csrf"]    # every POST checks this

The cookie is ``expiry.nonce.actor.signature`` (HMAC-SHA256), HttpOnly and SameSite=Strict,
so no other site can send it. Its secret derives from the admin key, so every worker and
replica with the same key accepts it, and rotating the key logs everyone out. Without an
admin key (the development key only) the secret is random per process. The CSRF token is an
HMAC of the session's nonce: a page can only post a form it was given. The login form itself
is protected by a double-submit token (a cookie and a field that must match).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from starlette.requests import Request

COOKIE = "bounded_ui"
LOGIN_COOKIE = "bounded_ui_login"
TTL_S = 12 * 3600


def secret_from(admin_key: str | None) -> bytes:
    if admin_key:
        return hashlib.sha256(b"bounded-dashboard-session\x00" + admin_key.encode()).digest()
    return secrets.token_bytes(32)


class Sessions:
    def __init__(self, secret: bytes, ttl_s: float = TTL_S):
        self._secret = secret
        self.ttl_s = ttl_s

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, actor: str) -> str:
        body = f"{int(time.time() + self.ttl_s)}.{secrets.token_hex(12)}.{actor}"
        return f"{body}.{self._sign(body)}"

    def _parts(self, request: Request) -> tuple[str, str] | None:
        value = request.cookies.get(COOKIE, "")
        body, _, signature = value.rpartition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            return None
        expires, nonce, actor = [*body.split(".", 2), "", ""][:3]
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return nonce, actor

    def read(self, request: Request) -> str | None:
        """Who is logged in, or None."""
        parts = self._parts(request)
        return parts[1] if parts else None

    def csrf(self, request: Request) -> str:
        parts = self._parts(request)
        return self._sign("csrf:" + parts[0])[:32] if parts else ""

    def check_csrf(self, request: Request, token: str) -> bool:
        expected = self.csrf(request)
        return bool(expected) and hmac.compare_digest(expected, token) and same_origin(request)


def same_origin(request: Request) -> bool:
    """A browser's Origin (when it sends one) must be this host: belt to SameSite's braces."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host
