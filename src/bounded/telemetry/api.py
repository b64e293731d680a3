"""``GET /v1/traces``, ``GET /v1/traces/{trace_id}`` and ``GET /metrics``.

Reading traces needs the ``traces:read`` scope (or the admin key); their stored text,
``?include=text``, needs ``traces:read_text`` as well; ``/metrics`` needs ``metrics:read``.
A key limited to some features sees only their traces.

    GET /v1/traces?feature=support-answer&status=error&since=1767225600&limit=20
    GET /v1/traces/4bf92f3577b34da6a3ce929d0e0e4736?include=text
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bounded.errors import BoundedError, NotFound, PermissionDenied, Unprocessable
from bounded.gateway.auth import Principal
from bounded.gateway.call import client_trace_id
from bounded.gateway.respond import error_response
from bounded.store.db import Database
from bounded.telemetry.metrics import CONTENT_TYPE, Metrics
from bounded.telemetry.store import TraceRepository, open_trace_store, trace_store_url

Authenticate = Callable[[Request], Principal]
JSON = "application/json"
MAX_LIMIT = 500


def routes(
    authenticate: Authenticate,
    db: Database,
    metrics: Metrics,
    breakers: Callable[[], dict[str, dict[str, object]]],
) -> list[Route]:
    store = _LazyStore(trace_store_url(db.url))

    def allowed(request: Request, scope: str) -> Principal:
        principal = authenticate(request)
        if not principal.may(scope):
            raise PermissionDenied(
                f"key {principal.name!r} lacks the {scope} scope; create one with"
                f" `bounded keys create NAME --scope {scope}`",
                code="scope_required",
            )
        return principal

    async def search(request: Request) -> Response:
        trace_id = client_trace_id(request)
        try:
            principal = allowed(request, "traces:read")
            query = request.query_params
            status = query.get("status")
            if status not in (None, "ok", "error"):
                raise Unprocessable("'status' must be ok or error", param="status")
            found = await asyncio.to_thread(
                store.search,
                feature=query.get("feature"),
                since=_number(query.get("since"), "since"),
                until=_number(query.get("until"), "until"),
                status=status,
                features=_visible(principal),
                limit=int(_number(query.get("limit"), "limit", 1, MAX_LIMIT) or 50),
            )
            return _json({"object": "list", "data": found})
        except BoundedError as exc:
            return error_response(exc, trace_id)

    async def one(request: Request) -> Response:
        trace_id = client_trace_id(request)
        wanted = request.path_params["trace_id"]
        try:
            principal = allowed(request, "traces:read")
            include = request.query_params.get("include")
            if include not in (None, "text"):
                raise Unprocessable("'include' takes only: text", param="include")
            if include == "text" and not principal.may("traces:read_text"):
                raise PermissionDenied(
                    "stored prompt and completion text needs the traces:read_text scope",
                    code="scope_required",
                )
            payload = await asyncio.to_thread(_trace, store.repo(), wanted, include == "text")
            visible = _visible(principal)
            requests = payload["requests"]
            if visible is not None and any(r["feature"] not in visible for r in requests):
                requests = []
            if not requests:
                raise NotFound(f"no trace {wanted!r}", param="trace_id", code="trace_not_found")
            return _json(payload)
        except BoundedError as exc:
            return error_response(exc, trace_id)

    async def scrape(request: Request) -> Response:
        trace_id = client_trace_id(request)
        try:
            allowed(request, "metrics:read")
        except BoundedError as exc:
            return error_response(exc, trace_id)
        metrics.breakers(breakers())
        return Response(await asyncio.to_thread(metrics.render), media_type=CONTENT_TYPE)

    return [
        Route("/v1/traces", search, methods=["GET"]),
        Route("/v1/traces/{trace_id}", one, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
    ]


class _LazyStore:
    """The trace store, opened (and created) at the first read, in a worker thread."""

    def __init__(self, url: str):
        self._url = url
        self._repo: TraceRepository | None = None

    def repo(self) -> TraceRepository:
        if self._repo is None:
            db = open_trace_store(self._url)
            assert db is not None
            self._repo = TraceRepository(db)
        return self._repo

    def search(self, **filters: Any) -> list[dict[str, Any]]:
        return self.repo().search(**filters)


def _trace(repo: TraceRepository, trace_id: str, text: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "trace_id": trace_id,
        "requests": repo.requests(trace_id),
        "spans": repo.spans(trace_id),
    }
    if text:
        payload["text"] = repo.texts(trace_id)
    return payload


def _visible(principal: Principal) -> tuple[str, ...] | None:
    if principal.admin or "*" in principal.features:
        return None
    return principal.features


def _number(
    value: str | None, name: str, low: float | None = None, high: float | None = None
) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise Unprocessable(f"'{name}' must be a number", param=name) from None
    if (
        number != number
        or (low is not None and number < low)
        or (high is not None and number > high)
    ):
        raise Unprocessable(f"'{name}' must be between {low} and {high}", param=name)
    return number


def _json(payload: object) -> Response:
    return Response(orjson.dumps(payload), media_type=JSON)
