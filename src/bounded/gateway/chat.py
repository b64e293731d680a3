"""``POST /v1/chat/completions``: auth, resolve, admit, route, settle, respond.

A response leaves only after its ledger row is durable. For a stream that means the chunks
that finish it (the finish reason, the usage) are held back until the row is written, so a
client never holds a complete answer that the ledger does not know about.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bounded.economics.spend import usd
from bounded.errors import BoundedError, NotFound, PayloadTooLarge, ProviderError
from bounded.gateway.auth import Principal
from bounded.gateway.metering import Call, usage_from_response
from bounded.gateway.runtime import Runtime, Target
from bounded.gateway.validate import check_chat, parse_json_object
from bounded.providers.sse import DONE, encode_event
from bounded.retrieval.access import viewer_for
from bounded.retrieval.context import assemble_context, attach_citations, citations_event
from bounded.routing.router import RouteTrace

if TYPE_CHECKING:
    from bounded.gateway.app import Gateway

log = logging.getLogger("bounded.gateway")

JSON = "application/json"
_background: set[asyncio.Task[None]] = set()
_CLIENT_TRACE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


async def chat_completions(gateway: Gateway, request: Request) -> Response:
    trace_id = client_trace_id(request)
    runtime = gateway.runtime
    runtime.in_flight += 1
    handed_off = False
    trace = RouteTrace()
    call: Call | None = None
    try:
        principal = gateway.authenticate(request)
        body = parse_json_object(await read_body(request, runtime))
        check_chat(body)
        target = resolve(runtime, body["model"], principal)
        upstream = apply_feature(body, target)
        # Context before admission: the reservation must count the tokens it adds.
        citations, citation_header = await _add_context(
            gateway, runtime, target, principal, upstream
        )
        call = Call(
            trace_id,
            request.headers.get("x-bounded-session"),
            principal,
            target,
            stream=bool(body.get("stream")),
        )
        await gateway.meter.admit(call, runtime, upstream)
        if call.stream:
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            # Always ask upstream for usage: the ledger needs it even when the client does
            # not; the usage-only chunk is dropped again for such clients.
            upstream["stream_options"] = {
                **(body.get("stream_options") or {}),
                "include_usage": True,
            }
            routed = await runtime.router.stream(
                target.route, upstream, trace, gate=gateway.meter.deployment_gate(call)
            )
            call.deployment, call.attempts = trace.deployment, trace.attempts
            handed_off = True
            return _MeteredStream(
                gateway,
                runtime,
                call,
                _sse(gateway, runtime, call, routed.chunks, wants_usage, citations),
                media_type="text/event-stream",
                headers={
                    **headers_for(trace_id, trace, call),
                    "cache-control": "no-cache",
                    **citation_header,
                },
            )
        response, _ = await runtime.router.complete(
            target.route, upstream, trace, gate=gateway.meter.deployment_gate(call)
        )
        call.deployment, call.attempts = trace.deployment, trace.attempts
        call.usage = usage_from_response(response)
        if call.usage is None:
            for choice in response.get("choices") or ():
                call.output_text.append((choice.get("message") or {}).get("content") or "")
        await gateway.meter.settle(call, runtime)
        if citations:
            response = attach_citations(response, citations)
        headers = {
            **headers_for(trace_id, trace, call),
            "x-bounded-cost-usd": usd(call.cost),
            **citation_header,
        }
        return Response(orjson.dumps(response), media_type=JSON, headers=headers)
    except BoundedError as exc:
        if call is not None and not call.recorded:
            await _record_failure(gateway, runtime, call, trace, exc)
        return error_response(exc, trace_id, trace, call)
    finally:
        if not handed_off:
            leave(runtime)


async def _sse(
    gateway: Gateway,
    runtime: Runtime,
    call: Call,
    chunks: AsyncIterator[dict[str, Any]],
    wants_usage: bool,
    citations: list[dict[str, Any]],
) -> AsyncIterator[bytes]:
    call.streaming = True
    held: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    finished = False
    try:
        async for chunk in chunks:
            gateway.meter.observe_chunk(call, chunk)
            last = chunk
            if finished or _finishes(chunk):
                finished = True
                held.append(chunk)
                continue
            yield encode_event(_for_client(chunk, wants_usage))
        await gateway.meter.settle(call, runtime)
        for chunk in held:
            if wants_usage or chunk.get("choices"):
                yield encode_event(_for_client(chunk, wants_usage))
        if citations and last is not None:
            yield encode_event(citations_event(citations, like=last))
        yield DONE
    except BoundedError as exc:
        # Tokens were already sent: end with an error event, which OpenAI SDKs raise as an
        # APIError, never a silent truncation.
        if not call.recorded:
            await _record_failure(gateway, runtime, call, None, exc)
        yield encode_event(exc.body())
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away mid-stream: record what was generated, off this task.
        if not call.recorded:
            call.status, call.error_class = 499, "client_closed"
            task = asyncio.get_running_loop().create_task(_settle_quietly(gateway, runtime, call))
            _background.add(task)  # held until done: unreferenced tasks can be collected
            task.add_done_callback(_background.discard)
        raise
    finally:
        leave(runtime)


class _MeteredStream(StreamingResponse):
    """A stream whose call is settled even if the client leaves before the body starts
    (then the generator never runs, so its own cleanup never would)."""

    def __init__(
        self,
        gateway: Gateway,
        runtime: Runtime,
        call: Call,
        content: AsyncIterator[bytes],
        **kwargs: Any,
    ):
        super().__init__(content, **kwargs)
        self._gateway, self._runtime, self._call = gateway, runtime, call

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self._call.streaming:
                leave(self._runtime)
                if not self._call.recorded:
                    self._call.status, self._call.error_class = 499, "client_closed"
                    task = asyncio.get_running_loop().create_task(
                        _settle_quietly(self._gateway, self._runtime, self._call)
                    )
                    _background.add(task)
                    task.add_done_callback(_background.discard)


def _finishes(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    if not choices:
        return bool(chunk.get("usage"))
    return any(c.get("finish_reason") for c in choices)


def _for_client(chunk: dict[str, Any], wants_usage: bool) -> dict[str, Any]:
    if not wants_usage and "usage" in chunk:
        chunk = {k: v for k, v in chunk.items() if k != "usage"}
    return chunk


async def _record_failure(
    gateway: Gateway, runtime: Runtime, call: Call, trace: RouteTrace | None, exc: BoundedError
) -> None:
    call.status = exc.status
    call.error_class = exc.kind if isinstance(exc, ProviderError) else exc.code
    if trace is not None:
        call.deployment = call.deployment or trace.deployment
        call.attempts = trace.attempts
    await _settle_quietly(gateway, runtime, call)


async def _settle_quietly(gateway: Gateway, runtime: Runtime, call: Call) -> None:
    """Settle a failed call; the client's error must not be replaced by a ledger error."""
    try:
        await gateway.meter.settle(call, runtime)
    except BoundedError:
        log.exception("could not record failed call %s", call.trace_id)


async def _add_context(
    gateway: Gateway,
    runtime: Runtime,
    target: Target,
    principal: Principal,
    upstream: dict[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Retrieve for the last user message and inject numbered sources (features with
    ``retrieval:``); return the citations and their header."""
    feature = target.feature
    if feature is None or feature.retrieval is None or gateway.retrieval is None:
        return [], {}
    model = runtime.config.models[target.route.targets[0]].model
    assembled = await assemble_context(
        gateway.retrieval,
        feature.retrieval,
        upstream["messages"],
        viewer_for(principal),
        count=gateway.meter.counter.counter_for(model),
    )
    upstream["messages"] = assembled.messages
    citations = assembled.citations_json()
    return citations, ({"x-bounded-citations": assembled.header()} if citations else {})


def client_trace_id(request: Request) -> str:
    """The caller's own trace id (so several calls can share one), or a new one."""
    given = request.headers.get("x-bounded-trace-id")
    if given and _CLIENT_TRACE.match(given):
        return given
    return secrets.token_hex(16)


def resolve(runtime: Runtime, name: str, principal: Principal) -> Target:
    target = runtime.targets.get(name)
    if target is None:
        raise NotFound(f"no feature or model named {name!r}; see GET /v1/models", param="model")
    principal.check(target)
    return target


def apply_feature(body: dict[str, Any], target: Target) -> dict[str, Any]:
    """The body sent upstream: the feature's system prompt first, nothing else changed."""
    if target.feature is None or not target.feature.prompt.system:
        return dict(body)
    system = {"role": "system", "content": target.feature.prompt.system}
    return {**body, "messages": [system, *body["messages"]]}


async def read_body(request: Request, runtime: Runtime) -> bytes:
    limit = runtime.config.server.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def headers_for(trace_id: str, trace: RouteTrace | None, call: Call | None) -> dict[str, str]:
    headers = {"x-bounded-trace-id": trace_id}
    if trace is not None and trace.attempts:
        headers["x-bounded-attempts"] = str(trace.attempts)
        if trace.deployment:
            headers["x-bounded-route"] = trace.deployment
    if call is not None and call.hold is not None:
        headers.update(call.hold.headers)
    return headers


def error_response(
    exc: BoundedError, trace_id: str, trace: RouteTrace | None = None, call: Call | None = None
) -> Response:
    headers = {**headers_for(trace_id, trace, call), **exc.headers()}
    return Response(
        orjson.dumps(exc.body()), status_code=exc.status, media_type=JSON, headers=headers
    )


def leave(runtime: Runtime) -> None:
    runtime.in_flight -= 1
    if runtime.in_flight == 0:
        runtime.retired.set()
