"""Auth: the bearer key becomes a principal before anything else is read."""

from __future__ import annotations

from collections.abc import Awaitable

from bounded.errors import InvalidRequest
from bounded.gateway.auth import Authenticator
from bounded.gateway.call import MAX_CLIENT_ID_CHARS, Call, Next, Reply
from bounded.validation.identifiers import stored_id


class Authenticate:
    name = "auth"

    def __init__(self, authenticator: Authenticator):
        self._auth = authenticator

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        request = call.request
        client = request.client.host if request.client else None
        call.principal = self._auth.authenticate(request.headers.get("authorization"), client)
        session = request.headers.get("x-bounded-session")
        if session is not None:
            if not 0 < len(session) <= MAX_CLIENT_ID_CHARS:
                raise InvalidRequest(
                    f"x-bounded-session must be 1 to {MAX_CLIENT_ID_CHARS} characters",
                    param="x-bounded-session",
                    code="invalid_session",
                )
            call.session_id = stored_id(session)
        return next(call)
