"""Admit: budgets and rate limits reserved before any upstream call (429 if they don't fit)."""

from __future__ import annotations

from bounded.gateway.call import Call, Next, Reply
from bounded.gateway.metering import Meter


class Admit:
    name = "admit"

    def __init__(self, meter: Meter):
        self._meter = meter

    async def __call__(self, call: Call, next: Next) -> Reply:
        await self._meter.admit(call)
        return await next(call)
