"""Server-sent events: reading an upstream stream, writing ours."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import orjson


async def iter_sse_events(lines: AsyncIterable[bytes]) -> AsyncIterator[tuple[bytes, bytes]]:
    """Yield ``(event, data)`` per event; multi-line data is joined with newlines."""
    event = b""
    data: list[bytes] = []
    async for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield event, b"\n".join(data)
            event, data = b"", []
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value
    if data:
        yield event, b"\n".join(data)


async def iter_sse_data(lines: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for _event, data in iter_sse_events(lines):
        yield data


def encode_event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
