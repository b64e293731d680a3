"""``POST /v1/outcomes`` (link a business outcome to calls) and ``GET /v1/spend``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bounded.economics.periods import PERIODS, window
from bounded.economics.spend import GROUPS, record_outcome, spend_report
from bounded.errors import BoundedError, NotFound, PermissionDenied, Unprocessable
from bounded.gateway.api_schema import OutcomeRequest, check
from bounded.gateway.auth import Principal
from bounded.gateway.call import client_trace_id
from bounded.gateway.respond import error_response
from bounded.gateway.stages.body import read_limited
from bounded.gateway.validate import parse_json_object
from bounded.store.db import Database
from bounded.validation.identifiers import stored_id

Authenticate = Callable[[Request], Principal]

JSON = "application/json"


def routes(authenticate: Authenticate, db: Database, body_limit: Callable[[], int]) -> list[Route]:
    """The routes, given how to authenticate, the store, and the current body limit."""

    async def outcomes(request: Request) -> Response:
        trace_id = client_trace_id(request)
        try:
            principal = authenticate(request)
            body = parse_json_object(await read_limited(request, body_limit()))
            check(OutcomeRequest, body)
            target, outcome, value = body["trace_id"], body["outcome"], body.get("value")
            # A session id holding personal data is stored hashed: look it up the same way.
            target = stored_id(target)
            linked = record_outcome(db, target, outcome, value, principal.key_id)
            if not linked:
                raise NotFound(
                    f"no call with trace id or session {target!r}",
                    param="trace_id",
                    code="trace_not_found",
                )
            payload = {"trace_id": target, "outcome": outcome, "linked_calls": linked}
            return Response(orjson.dumps(payload), status_code=201, media_type=JSON)
        except BoundedError as exc:
            return error_response(exc, trace_id)

    async def spend(request: Request) -> Response:
        trace_id = client_trace_id(request)
        try:
            principal = authenticate(request)
            if not principal.admin:
                raise PermissionDenied("spend reports need the admin key", code="admin_required")
            since, until, period = spend_window(
                request.query_params.get("period", "month"), request.query_params.get("since")
            )
            report = await asyncio.to_thread(_report, db.url, since, until)
            payload = {"period": period, "since": since, "until": until, **report}
            return Response(orjson.dumps(payload), media_type=JSON)
        except BoundedError as exc:
            return error_response(exc, trace_id)

    return [
        Route("/v1/outcomes", outcomes, methods=["POST"]),
        Route("/v1/spend", spend, methods=["GET"]),
    ]


def spend_window(period: str, since: str | None) -> tuple[float, float, str]:
    now = time.time()
    if since is not None:
        try:
            return float(since), now, "custom"
        except ValueError:
            raise Unprocessable("'since' must be a unix timestamp", param="since") from None
    if period not in PERIODS:
        raise Unprocessable(f"'period' must be one of {', '.join(PERIODS)}", param="period")
    start, _ = window(period, now)
    return start, now, period


def _report(url: str, since: float, until: float) -> dict[str, object]:
    """Runs in a worker thread on its own connection, so the hot path never waits on it."""
    db = Database.open(url, migrate=False)
    try:
        return {
            by: [line.as_dict() for line in spend_report(db, by, since, until)] for by in GROUPS
        }
    finally:
        db.close()
