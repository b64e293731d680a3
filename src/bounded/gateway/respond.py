"""Respond: a reply becomes JSON or server-sent events; an error, an OpenAI-style body.

Every response carries ``x-bounded-trace-id``; routed ones ``x-bounded-route`` and
``x-bounded-attempts``; settled JSON ones ``x-bounded-cost-usd``. A stream that fails
after its first token ends with an error event, which OpenAI SDKs raise as an APIError,
never a silent truncation.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from bounded.economics.spend import usd
from bounded.errors import BoundedError, ProviderError
from bounded.gateway.call import Call, Json, Pipeline, Reply
from bounded.gateway.streams import closing
from bounded.gateway.whole_response import JsonAnswer
from bounded.providers.sse import DONE, encode_event

log = logging.getLogger("bounded.gateway")

JSON = "application/json"


async def run(pipeline: Pipeline, call: Call) -> Response | JsonAnswer:
    """Run the request path for ``call`` and answer; the call is closed when the
    response is done (for a stream, when its last byte is sent or the client left)."""
    try:
        reply = await pipeline(call)
    except BoundedError as exc:
        call.close()
        _log_failure(call, exc)
        return error_response(exc, call.trace_id, call)
    except BaseException:
        call.close()
        raise
    if reply.chunks is None:
        call.close()
        return json_response(call, reply)
    return _CallStream(call, _events(call, reply.chunks))


def json_response(call: Call, reply: Reply) -> JsonAnswer:
    hold = call.hold
    headers = headers_for(call, lines=False)
    if call.recorded:
        headers["x-bounded-cost-usd"] = usd(call.cost)
    # The rate-limit headers travel as the accountant wrote them, as header lines.
    lines = hold.header_lines if hold is not None else ""
    return JsonAnswer(orjson.dumps(reply.body), headers, lines=lines)


def headers_for(call: Call, lines: bool = True) -> dict[str, str]:
    """Every header of the call's answer; ``lines=False``: all but its ``header_lines``."""
    headers = {"x-bounded-trace-id": call.trace_id}
    trace = call.trace
    if trace.attempts:
        headers["x-bounded-attempts"] = str(trace.attempts)
        if trace.deployment:
            headers["x-bounded-route"] = trace.deployment
    if lines and call.hold is not None:
        headers.update(call.hold.headers())
    headers.update(call.headers)
    return headers


def error_response(exc: BoundedError, trace_id: str, call: Call | None = None) -> Response:
    headers = {"x-bounded-trace-id": trace_id}
    if call is not None:
        headers.update(headers_for(call))
    headers.update(exc.headers())
    return Response(
        orjson.dumps(exc.body()), status_code=exc.status, media_type=JSON, headers=headers
    )


async def _events(call: Call, chunks: AsyncIterator[Json]) -> AsyncIterator[bytes]:
    wants_usage = call.wants_usage
    try:
        async with closing(chunks):
            async for chunk in chunks:
                if not wants_usage and "usage" in chunk:
                    if not chunk.get("choices"):
                        continue  # the usage-only chunk bounded asked for itself
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}
                yield encode_event(chunk)
    except BoundedError as exc:
        _log_failure(call, exc)
        yield encode_event(exc.body())
        return
    yield DONE


class _CallStream(StreamingResponse):
    """An SSE response that closes its call however it ends, even if the client leaves
    before the body starts (then the stream never runs, so its own cleanup never would)."""

    def __init__(self, call: Call, content: AsyncIterator[bytes]):
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={**headers_for(call), "cache-control": "no-cache"},
        )
        self._call = call

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._call.close()


def _log_failure(call: Call, exc: BoundedError) -> None:
    """One line per failed request: upstream failures and our own 5xx at WARNING (they
    need someone's attention), client mistakes at INFO. Scrubbed of personal data and
    secrets: an error message may quote what the client or the upstream sent."""
    level = logging.WARNING if isinstance(exc, ProviderError) or exc.status >= 500 else logging.INFO
    if not log.isEnabledFor(level):
        return
    from bounded.validation.identifiers import scrub

    model = call.body.get("model") if hasattr(call, "body") else None
    log.log(
        level,
        "%s %s -> %d %s (trace %s%s): %s",
        call.request.method,
        call.request.url.path,
        exc.status,
        exc.code,
        call.trace_id,
        f", model {scrub(str(model))}" if model else "",
        scrub(exc.message),
    )
