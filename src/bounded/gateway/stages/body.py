"""Body: read within the size limit, parse, and check against the request schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request

from bounded.errors import ClientClosed, PayloadTooLarge
from bounded.gateway.call import Call, Next, Reply
from bounded.gateway.validate import parse_json_object

Check = Callable[[dict[str, Any]], None]


class ReadBody:
    name = "body"

    def __init__(self, check: Check):
        self._check = check

    async def __call__(self, call: Call, next: Next) -> Reply:
        raw = await read_limited(call.request, call.runtime.config.server.max_body_bytes)
        body = parse_json_object(raw)
        self._check(body)
        call.body = body
        call.stream = bool(body.get("stream"))
        return await next(call)


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientClosed("the client closed the connection before its body arrived") from None
    return b"".join(chunks)
