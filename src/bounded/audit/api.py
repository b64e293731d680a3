"""``GET /v1/audit``: the audit log, newest ``limit`` entries oldest first.

Reading it needs the ``audit:read`` scope (``bounded keys create auditor --scope
audit:read``) or the admin key. The log is the whole deployment's: a key limited to some
features still reads every entry, so grant the scope as you would the admin key's view.

    curl -H "authorization: Bearer $BOUNDED_ADMIN_KEY" \
        "localhost:8000/v1/audit?since=1767225600&action=prompt"
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bounded.audit.log import DEFAULT_LIMIT, AuditLog
from bounded.errors import BoundedError, PermissionDenied, Unprocessable
from bounded.gateway.auth import Principal
from bounded.gateway.call import client_trace_id
from bounded.gateway.respond import error_response

JSON = "application/json"


def routes(authenticate: Callable[[Request], Principal], audit: AuditLog) -> list[Route]:
    async def entries(request: Request) -> Response:
        trace_id = client_trace_id(request)
        try:
            principal = authenticate(request)
            if not principal.may("audit:read"):
                raise PermissionDenied(
                    f"key {principal.name!r} lacks the audit:read scope; create one with"
                    " `bounded keys create NAME --scope audit:read`",
                    code="scope_required",
                )
            query = request.query_params
            since = _number(query.get("since"), "since")
            limit = _number(query.get("limit"), "limit")
            found = await asyncio.to_thread(
                audit.entries,
                since=since,
                action=query.get("action") or None,
                subject=query.get("subject") or None,
                limit=DEFAULT_LIMIT if limit is None else int(limit),
            )
            payload = {"object": "list", "data": [e.json() for e in found]}
            return Response(orjson.dumps(payload), media_type=JSON)
        except BoundedError as exc:
            return error_response(exc, trace_id)

    return [Route("/v1/audit", entries, methods=["GET"])]


def _number(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise Unprocessable(f"'{name}' must be a number", param=name) from None
    if not number >= 0 or number == float("inf"):
        raise Unprocessable(f"'{name}' must be a number of at least 0", param=name)
    return number
