"""Settle: every admitted request leaves one ledger row, written before its answer leaves.

A JSON reply is settled before it is returned. A stream's finishing chunks (the finish
reason, the usage) are held back until its row is written, so a client never holds a
complete answer the ledger does not know about. A stream that fails after its first
tokens, or that the client drops, is settled with what it produced so far: tokens that
reached the client are charged. A reserved stream that reaches its output cap is cut
here, by bounded, with ``finish_reason: "length"``: the upstream cannot overspend it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from bounded.errors import BoundedError, ProviderError
from bounded.gateway.call import Call, Json, Next, Reply, in_background
from bounded.gateway.metering import Meter
from bounded.gateway.streams import closing

log = logging.getLogger("bounded.gateway")


class Settle:
    name = "settle"

    def __init__(self, meter: Meter):
        self._meter = meter

    async def __call__(self, call: Call, next: Next) -> Reply:
        try:
            reply = await next(call)
        except BaseException as exc:
            await self._failed(call, exc)
            raise
        if reply.chunks is None:
            await self._meter.settle(call)
            return reply
        # If the client leaves before the body starts, the stream never runs: settle then.
        call.on_close(lambda: self._abandoned(call))
        reply.chunks = self._metered(call, reply.chunks)
        return reply

    async def _metered(self, call: Call, chunks: AsyncIterator[Json]) -> AsyncIterator[Json]:
        call.streaming = True
        held: list[Json] = []
        meter = self._meter
        try:
            async with closing(chunks):
                async for chunk in chunks:
                    meter.observe_chunk(call, chunk)
                    if held or _finishes(chunk):
                        held.append(chunk)
                        continue
                    yield chunk
                    if not call.buffered and meter.output_cap_reached(call):
                        call.flags.append("cut_at_max_tokens")
                        held.append(_length_finish(chunk))
                        break
            await meter.settle(call)
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away mid-stream: record what was generated, off this task.
            self._abandoned(call)
            raise
        except BaseException as exc:
            await self._failed(call, exc)
            raise
        for chunk in held:
            yield chunk

    async def _failed(self, call: Call, exc: BaseException) -> None:
        """Record a failed call; the client's error must not become a ledger error."""
        if call.recorded:
            return
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            call.status, call.error_class = 499, "client_closed"
        elif isinstance(exc, BoundedError):
            call.status = exc.status
            call.error_class = exc.kind if isinstance(exc, ProviderError) else exc.code
        else:
            call.status, call.error_class = 500, "internal_error"
        call.deployment = call.deployment or call.trace.deployment
        call.attempts = call.trace.attempts
        try:
            await self._meter.settle(call)
        except BoundedError:
            log.exception("could not record failed call %s", call.trace_id)

    def _abandoned(self, call: Call) -> None:
        if not call.recorded:
            in_background(self._failed(call, asyncio.CancelledError()))


def _finishes(chunk: Json) -> bool:
    choices = chunk.get("choices")
    if not choices:
        return bool(chunk.get("usage"))
    return any(c.get("finish_reason") for c in choices)


def _length_finish(like: Json) -> Json:
    """The chunk that ends a stream bounded cut at its output cap."""
    return {
        "id": like.get("id"),
        "object": "chat.completion.chunk",
        "created": like.get("created", 0),
        "model": like.get("model"),
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
    }
