"""``GET /v1/prompts/{feature}``: a feature's versions and labels, and one version in full
(``?version=`` a number or a label; ``production`` by default). Admin key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bounded.errors import BoundedError, PermissionDenied
from bounded.gateway.auth import Principal
from bounded.gateway.call import client_trace_id
from bounded.gateway.respond import error_response
from bounded.prompts.store import LATEST, PRODUCTION, PromptStore, check_feature

JSON = "application/json"


def routes(authenticate: Callable[[Request], Principal], store: PromptStore) -> list[Route]:
    async def prompt(request: Request) -> Response:
        trace_id = client_trace_id(request)
        try:
            if not authenticate(request).admin:
                raise PermissionDenied("prompts need the admin key", code="admin_required")
            feature = request.path_params["feature"]
            check_feature(feature)
            ref = request.query_params.get("version") or None
            payload = await asyncio.to_thread(describe, store, feature, ref)
            return Response(orjson.dumps(payload), media_type=JSON)
        except BoundedError as exc:
            return error_response(exc, trace_id)

    return [Route("/v1/prompts/{feature:path}", prompt, methods=["GET"])]


def describe(store: PromptStore, feature: str, ref: str | None) -> dict[str, Any]:
    """The feature's labels, a line per version, and ``ref`` (or production) in full."""
    versions = store.versions(feature)
    labels = store.labels(feature)
    if ref is None:
        ref = PRODUCTION if PRODUCTION in labels else LATEST
    chosen = store.get(feature, ref)  # PromptNotFound (404) names what exists
    by_version: dict[int, list[str]] = {}
    for label, number in labels.items():
        by_version.setdefault(number, []).append(label)
    return {
        "feature": feature,
        "labels": labels,
        "versions": [
            {
                "version": v.version,
                "author": v.author,
                "message": v.message,
                "created_at": v.created_at,
                "digest": v.digest,
                "labels": sorted(by_version.get(v.version, [])),
            }
            for v in versions
        ],
        "version": chosen.json(sorted(by_version.get(chosen.version, []))),
    }
