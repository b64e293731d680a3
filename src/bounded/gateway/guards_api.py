"""``POST /v1/guards/check``: try a guard policy on a text before turning it on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bounded.errors import BoundedError, NotFound, Unprocessable
from bounded.gateway.api_schema import GuardIn, GuardsCheckRequest, check
from bounded.gateway.auth import Principal
from bounded.gateway.call import client_trace_id
from bounded.gateway.respond import error_response
from bounded.gateway.runtime import Runtime
from bounded.gateway.stages.body import read_limited
from bounded.gateway.validate import parse_json_object
from bounded.validation.config import GuardSpec
from bounded.validation.guards.base import GuardConfigError
from bounded.validation.policy import effective_policy

JSON = "application/json"


def routes(
    authenticate: Callable[[Request], Principal], runtime: Callable[[], Runtime]
) -> list[Route]:
    async def guards_check(request: Request) -> Response:
        trace_id = client_trace_id(request)
        try:
            principal = authenticate(request)
            current = runtime()
            body = parse_json_object(
                await read_limited(request, current.config.server.max_body_bytes)
            )
            check(GuardsCheckRequest, body)
            specs = _specs(body, current, principal)
            from bounded.validation.service import check_text

            report = await asyncio.to_thread(
                check_text,
                body["text"],
                specs,
                place=body.get("place", "input"),
                risk_tier=body.get("risk_tier", "low"),
                sources=body.get("sources") or (),
            )
            headers = {"x-bounded-trace-id": trace_id}
            return Response(orjson.dumps(report), media_type=JSON, headers=headers)
        except BoundedError as exc:
            return error_response(exc, trace_id)

    return [Route("/v1/guards/check", guards_check, methods=["POST"])]


def _specs(body: dict[str, object], runtime: Runtime, principal: Principal) -> list[GuardSpec]:
    name = body.get("feature")
    if isinstance(name, str):
        target = runtime.targets.get(name)
        if target is None or target.feature is None:
            raise NotFound(f"no feature named {name!r}", param="feature")
        principal.check(target)
        place = str(body.get("place", "input"))
        return list(effective_policy(target.feature).guards(place))
    given = body.get("guards")
    if not isinstance(given, list):
        raise Unprocessable("give 'guards' or name a 'feature'", param="guards")
    from bounded.validation.guards import registry

    specs = []
    for i, raw in enumerate(given):
        # Only the fields the request schema knows (it lets others through, unread).
        fields = {name: raw[name] for name in GuardIn.model_fields if name in raw}
        try:
            specs.append(GuardSpec(**fields))
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            raise Unprocessable(f"guards[{i}]: {problem['msg']}", param=f"guards[{i}]") from None
    for i, spec in enumerate(specs):
        try:
            registry.build(spec.kind, spec.detector_options())
        except (GuardConfigError, TypeError, ValueError) as exc:
            raise Unprocessable(str(exc), param=f"guards[{i}]") from None
    return specs
