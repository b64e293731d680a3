"""``GET /v1/releases/{feature}/pairs``: a shadow release's answers side by side.

    curl -H "authorization: Bearer $KEY" \
        "localhost:8000/v1/releases/support-answer/pairs?limit=20&release=3f9a0c1d2e4b5a69"
    GET /v1/releases/support-answer/pairs?differ=true   # only where the arms disagree

The same report as ``bounded release answers --json`` (:func:`~bounded.releases.answers.
pairs_report`). Pairs are trace data: reading them needs the ``traces:read`` scope (or the
admin key), their answer text ``traces:read_text`` as well (without it the metrics come
alone, and ``text_policy`` says so). A key limited to some features sees only theirs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bounded.config.schema import BoundedConfig
from bounded.errors import BoundedError, NotFound, PermissionDenied, Unprocessable
from bounded.gateway.auth import Principal
from bounded.gateway.call import client_trace_id
from bounded.gateway.respond import error_response
from bounded.releases.answers import MAX_LIMIT, pairs_report, pick_release
from bounded.releases.store import ReleaseStore
from bounded.store.db import Database
from bounded.telemetry.store import open_trace_store, trace_store_url

JSON = "application/json"


def routes(
    authenticate: Callable[[Request], Principal],
    db: Database,
    config: Callable[[], BoundedConfig],
) -> list[Route]:
    store = ReleaseStore(db)
    traces = _TraceStore(trace_store_url(db.url))

    async def pairs(request: Request) -> Response:
        trace_id = client_trace_id(request)
        feature = request.path_params["feature"]
        try:
            principal = _allowed(authenticate(request), "traces:read")
            if not (principal.admin or "*" in principal.features or feature in principal.features):
                raise NotFound(f"no feature {feature!r}", param="feature", code="feature_not_found")
            spec = config().features.get(feature)
            if spec is None:
                raise NotFound(f"no feature {feature!r}", param="feature", code="feature_not_found")
            limit = _limit(request.query_params.get("limit"))
            text = principal.may("traces:read_text")
            release_id = request.query_params.get("release") or None
            differ = _flag(request.query_params.get("differ"))
            report = await asyncio.to_thread(
                _report, store, traces, feature, release_id, spec, limit, text, differ
            )
            return Response(orjson.dumps(report), media_type=JSON)
        except BoundedError as exc:
            return error_response(exc, trace_id)

    return [Route("/v1/releases/{feature}/pairs", pairs, methods=["GET"])]


def _report(
    store: ReleaseStore,
    traces: _TraceStore,
    feature: str,
    release_id: str | None,
    spec: Any,
    limit: int,
    text: bool,
    differ: bool,
) -> dict[str, Any]:
    release = pick_release(store, feature, release_id)
    found = traces.get() if text else None
    report = pairs_report(
        store.db, found, release, spec, limit=limit, with_text=text, differ=differ
    )
    if not text:
        report["text_policy"] = {
            **report["text_policy"],
            "readable": False,
            "note": "answer text needs the traces:read_text scope; "
            + report["text_policy"]["note"],
        }
    return report


def _allowed(principal: Principal, scope: str) -> Principal:
    if not principal.may(scope):
        raise PermissionDenied(
            f"key {principal.name!r} lacks the {scope} scope; create one with"
            f" `bounded keys create NAME --scope {scope}`",
            code="scope_required",
        )
    return principal


def _limit(value: str | None) -> int:
    if value is None or value == "":
        return 20
    try:
        number = int(value)
    except ValueError:
        raise Unprocessable("'limit' must be a whole number", param="limit") from None
    if not 1 <= number <= MAX_LIMIT:
        raise Unprocessable(f"'limit' must be between 1 and {MAX_LIMIT}", param="limit")
    return number


def _flag(value: str | None) -> bool:
    if value in (None, "", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise Unprocessable("'differ' must be true or false", param="differ")


class _TraceStore:
    """The trace store, opened at the first read that finds it (telemetry creates it)."""

    def __init__(self, url: str):
        self._url = url
        self._db: Database | None = None
        self._lock = threading.Lock()

    def get(self) -> Database | None:
        with self._lock:
            if self._db is None:
                self._db = open_trace_store(self._url, create=False)
            return self._db
