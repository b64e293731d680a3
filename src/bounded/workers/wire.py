"""Frames on the owner's Unix socket: a 4-byte length, then one orjson array.

Requests from a worker, and what the owner answers (``id`` pairs them; ``settle`` has none,
being ordered on the connection before anything that depends on it)::

    ["r", id, budgets, rates, cost, tokens, now]  -> ["ok", id, hold, headers, alerts]
    ["s", hold, cost, tokens]                     (no answer)
    ["l", id, ledger values]                      -> ["ok", id]  once the row is committed
    ["a", id, ts, scope, period, amount, trace]   -> ["ok", id]
    any request                                   -> ["err", id, kind, message, code,
                                                      retry_after, extra_headers]

Money travels as decimal strings (exact), rules as arrays in their field order.
"""

from __future__ import annotations

import asyncio
import struct
from decimal import Decimal
from typing import Any

import orjson

from bounded.economics.rules import BudgetRule, RateRule

HEADER = struct.Struct("!I")
MAX_FRAME = 16 * 1024 * 1024  # a ledger row is well under 4 KB; anything bigger is a bug


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def frame(message: list[Any]) -> bytes:
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


class Outbox:
    """Frames written to a transport once per loop turn, together.

    Under load a worker has many requests in flight, and each sends a reserve, a settle and
    a ledger row; the owner answers each. Written one by one, that is a ``write()`` syscall
    per frame on both sides and as many wake-ups of the reader. Frames queued during one
    turn of the loop go out in one write, in the order they were queued (a settle stays
    ahead of the ledger row that depends on it).
    """

    __slots__ = ("_frames", "_loop", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._frames: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def put(self, data: bytes) -> None:
        if not self._frames:
            loop = self._loop or asyncio.get_running_loop()
            self._loop = loop
            loop.call_soon(self.flush)
        self._frames.append(data)

    def flush(self) -> None:
        frames, self._frames = self._frames, []
        transport = self.transport
        if frames and transport is not None and not transport.is_closing():
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def drop(self) -> None:
        """The connection is gone: what was queued for it goes nowhere."""
        self.transport = None
        self._frames = []


class FrameReader:
    """Bytes in, whole messages out (a read may hold several frames or part of one)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[list[Any]]:
        buffer = self._buffer
        buffer += data
        messages: list[list[Any]] = []
        start = 0
        size = len(buffer)
        while size - start >= 4:
            (length,) = HEADER.unpack_from(buffer, start)
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes")
            end = start + 4 + length
            if end > size:
                break
            messages.append(orjson.loads(memoryview(buffer)[start + 4 : end]))
            start = end
        if start:
            del buffer[:start]
        return messages


def encode_budgets(rules: list[BudgetRule]) -> list[list[str]]:
    return [[r.scope, str(r.amount), r.period, r.mode] for r in rules]


def decode_budgets(items: list[list[str]]) -> list[BudgetRule]:
    return [
        BudgetRule(scope, Decimal(amount), period, mode) for scope, amount, period, mode in items
    ]


def encode_rates(rules: list[RateRule]) -> list[list[Any]]:
    return [[r.scope, r.rpm, r.tpm] for r in rules]


def decode_rates(items: list[list[Any]]) -> list[RateRule]:
    return [RateRule(scope, rpm, tpm) for scope, rpm, tpm in items]
