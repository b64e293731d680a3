"""HTTP endpoints for collections, mounted by the gateway next to its own routes.

    GET  /v1/collections                  status and freshness of each collection
    POST /v1/collections/{name}/search    {"query", "top_k"?, "mode"?, "filters"?, "mmr_lambda"?}
    POST /v1/collections/{name}/sync      admin only; the sync report (per-document errors)

Callers see only chunks their labels allow (see :mod:`bounded.retrieval.access`); errors are
OpenAI-shaped, like the rest of the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bounded.errors import (
    BoundedError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
    Unprocessable,
)
from bounded.retrieval.access import PrincipalLike, viewer_for
from bounded.telemetry.spans import new_trace_id

if TYPE_CHECKING:
    from bounded.retrieval.service import RetrievalService

log = logging.getLogger("bounded.retrieval")
JSON = "application/json"
MAX_QUERY_CHARS = 4096
MODES = ("bm25", "dense", "hybrid")

Authenticate = Callable[[Request], PrincipalLike]
ServiceRef = Callable[[], "RetrievalService | None"]


def retrieval_routes(service: ServiceRef, authenticate: Authenticate) -> list[Route]:
    """Routes bound to a service getter (so a config reload can swap the service) and the
    gateway's authenticator (which raises Unauthenticated)."""

    def collection(name: str) -> RetrievalService:
        svc = service()
        if svc is None:
            raise NotFound(
                f"no collection named {name!r}; none are defined", code="collection_not_found"
            )
        svc.collection(name)  # NotFound naming the defined ones
        return svc

    async def list_collections(request: Request) -> Response:
        principal = authenticate(request)
        svc = service()
        details = bool(getattr(principal, "admin", False))
        data = []
        if svc is not None:
            found = svc

            def status(name: str) -> dict[str, Any]:
                # One collection's database being down must not hide the others.
                try:
                    return found.status(name, details=details)
                except StoreUnavailable as exc:
                    return {"name": name, "object": "collection", **exc.body()}

            data = await asyncio.to_thread(lambda: [status(name) for name in found.names])
        return _json({"object": "list", "data": data})

    async def search(request: Request) -> Response:
        principal = authenticate(request)
        name = request.path_params["name"]
        svc = collection(name)
        args = _search_args(await request.body())
        hits = await asyncio.to_thread(svc.search, name, viewer=viewer_for(principal), **args)
        return _json(
            {
                "object": "list",
                "collection": name,
                "mode": args["mode"],
                "data": [h.as_json() for h in hits],
            }
        )

    async def sync(request: Request) -> Response:
        principal = authenticate(request)
        if not getattr(principal, "admin", False):
            raise PermissionDenied(
                "only the admin key may sync a collection", code="admin_required"
            )
        name = request.path_params["name"]
        svc = collection(name)
        report = await asyncio.to_thread(svc.sync, name)
        return _json(report.as_json())

    return [
        Route("/v1/collections", _guard(list_collections), methods=["GET"]),
        Route("/v1/collections/{name}/search", _guard(search), methods=["POST"]),
        Route("/v1/collections/{name}/sync", _guard(sync), methods=["POST"]),
    ]


def _search_args(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise Unprocessable("'query' must be a non-empty string", param="query")
    if len(query) > MAX_QUERY_CHARS:
        raise Unprocessable(f"'query' is over {MAX_QUERY_CHARS} characters", param="query")
    top_k = body.get("top_k", 10)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 100:
        raise Unprocessable("'top_k' must be an integer from 1 to 100", param="top_k")
    mode = body.get("mode", "hybrid")
    if mode not in MODES:
        raise Unprocessable(f"'mode' must be one of {', '.join(MODES)}", param="mode")
    filters = body.get("filters") or {}
    if not isinstance(filters, dict) or not all(_filter_value(v) for v in filters.values()):
        raise Unprocessable(
            "'filters' maps metadata keys to a value or a list of values", param="filters"
        )
    mmr = body.get("mmr_lambda")
    if mmr is not None and (not isinstance(mmr, int | float) or not 0 <= mmr <= 1):
        raise Unprocessable("'mmr_lambda' must be a number from 0 to 1", param="mmr_lambda")
    return {"query": query, "top_k": top_k, "mode": mode, "filters": filters, "mmr_lambda": mmr}


def _filter_value(value: Any) -> bool:
    scalar = (str, int, float, bool)
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, scalar) for v in value)
    return isinstance(value, scalar)


def _guard(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        trace_id = request.headers.get("x-bounded-trace-id") or new_trace_id()
        try:
            response: Response = await handler(request)
        except BoundedError as exc:
            response = Response(
                orjson.dumps(exc.body()),
                status_code=exc.status,
                media_type=JSON,
                headers=exc.headers(),
            )
        response.headers["x-bounded-trace-id"] = trace_id
        return response

    return endpoint


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload), media_type=JSON)
