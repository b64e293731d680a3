"""The background refresher of ``bounded serve``: re-sync each collection on its interval.

    task = asyncio.create_task(refresh_forever(lambda: gateway.retrieval))

A sync runs in a worker thread (parsing and embedding are blocking) and one collection at
a time, so a 2-core machine keeps serving requests while it refreshes. A failing sync is
logged and retried at the next interval; it never ends the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bounded.retrieval.service import RetrievalService

log = logging.getLogger("bounded.retrieval")
MAX_SLEEP_S = 60.0


async def refresh_forever(
    service: Callable[[], RetrievalService | None], clock: Callable[[], float] = time.time
) -> None:
    """Never returns; cancel the task to stop it (a sync in progress finishes its current
    document, then stops at the next one)."""
    stopping = False
    try:
        while True:
            svc = service()
            wait = MAX_SLEEP_S if svc is None else await refresh_due(svc, clock, lambda: stopping)
            await asyncio.sleep(wait)
    except asyncio.CancelledError:
        stopping = True
        raise


async def refresh_due(
    svc: RetrievalService,
    clock: Callable[[], float] = time.time,
    should_stop: Callable[[], bool] = lambda: False,
) -> float:
    """Sync every collection that is due; return the seconds until the next one is."""
    wait = MAX_SLEEP_S
    for name in svc.names:
        interval = svc.collection(name).refresh_interval_s
        if interval is None:
            continue
        last = await asyncio.to_thread(_last_sync, svc, name)
        due = (last or 0.0) + interval
        if clock() >= due:
            try:
                report = await asyncio.to_thread(svc.sync, name, None, should_stop)
                if report.errors:
                    log.warning("collection %s synced with %d error(s)", name, len(report.errors))
            except Exception:  # a broken collection must not stop the others' refreshes
                log.exception("background sync of collection %s failed", name)
                await asyncio.to_thread(svc.index(name).set_meta, "last_sync_at", str(clock()))
            due = clock() + interval
        wait = min(wait, max(1.0, due - clock()))
    return wait


def _last_sync(svc: RetrievalService, name: str) -> float | None:
    value = svc.index(name).get_meta("last_sync_at")
    return float(value) if value else None
