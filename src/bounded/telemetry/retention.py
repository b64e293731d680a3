"""The retention job: stored text goes when its feature's period ends, traces and their
spans after ``telemetry.trace_retention_days``; the ledger and the metrics are never touched.

    removed = sweep(db, config.telemetry)     # {"texts": n, "traces": n, "spans": n}
    task = asyncio.create_task(sweep_forever(db, lambda: runtime.config.telemetry))

Each text row carries its own ``expires_at``, set from the feature's
``text_retention_days`` when it was written, so shortening a period applies to new text;
the job deletes by that column alone (one indexed range delete, in the job's thread).
A request's spans are in its ``traces`` row (``spans_json``) and go with it; those written
before migration 0008 are rows of the ``spans`` table, deleted by their own start time.
The trace store is the sibling file of :func:`~bounded.telemetry.store.trace_store_url`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bounded.store.db import Database
from bounded.telemetry.config import TelemetryConfig
from bounded.telemetry.store import open_trace_store, trace_store_url

log = logging.getLogger("bounded.telemetry")


def sweep(db: Database, config: TelemetryConfig, now: float | None = None) -> dict[str, int]:
    now = time.time() if now is None else now
    cutoff = now - config.trace_retention_days * 86400
    with db.transaction():
        texts = db.execute_count("DELETE FROM trace_texts WHERE expires_at <= ?", (now,))
        # The count of spans that go with their rows, for the log (``traces.spans``).
        (held,) = db.execute(
            "SELECT COALESCE(SUM(spans), 0) AS n FROM traces"
            " WHERE ts < ? AND spans_json IS NOT NULL",
            (cutoff,),
        )
        legacy = db.execute_count("DELETE FROM spans WHERE start_ns < ?", (int(cutoff * 1e9),))
        traces = db.execute_count("DELETE FROM traces WHERE ts < ?", (cutoff,))
    return {"texts": texts, "spans": legacy + int(held["n"]), "traces": traces}


async def sweep_forever(store_url: str, config: Callable[[], TelemetryConfig]) -> None:
    """Sweep the trace store of ``store_url`` every ``retention_interval_s``, on a
    connection of its own, off the loop (nothing to do until the trace store exists)."""
    url = trace_store_url(store_url)
    db: Database | None = None
    try:
        while True:
            try:
                if db is None:
                    db = await asyncio.to_thread(open_trace_store, url, create=False)
                if db is not None:
                    removed = await asyncio.to_thread(sweep, db, config())
                    if any(removed.values()):
                        log.info("retention removed %s", removed)
            except Exception:
                log.exception("retention sweep failed; trying again next interval")
            await asyncio.sleep(config().retention_interval_s)
    finally:
        if db is not None:
            db.close()
