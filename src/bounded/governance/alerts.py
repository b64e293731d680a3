"""Drift alerts: a feature's signal leaving its band, recorded, logged and posted.

    alerts = check_drift(db, config, now=time.time())    # new alerts, already recorded
    await deliver_pending(db, config.alerts)             # POST to the webhook, retried

A band comes from ``features.F.health`` when configured, else it is learned from the
baseline window before the current one: the mean of the signal's hourly values ± ``sigmas``
standard deviations (at least three hours with ``min_samples`` requests each, else no band).
A window with fewer than ``min_samples`` requests is not judged. One alert per feature and
signal per window: a signal that stays out is not re-raised until the window has passed.
The gateway runs this in a background task (:func:`watch_forever`); nothing here is on the
request path.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bounded.governance.settings import SIGNALS, AlertsConfig, Band
from bounded.governance.signals import Signals, feature_signals, grid
from bounded.store.db import Database

if TYPE_CHECKING:
    from bounded.config.schema import BoundedConfig, FeatureConfig

log = logging.getLogger("bounded.drift")


@dataclass(frozen=True)
class ResolvedBand:
    low: float | None
    high: float | None
    source: str  # configured | baseline

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class Alert:
    feature: str
    signal: str
    value: float
    band: ResolvedBand
    window_start: float
    window_end: float
    samples: int

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "bounded.drift",
            "feature": self.feature,
            "signal": self.signal,
            "value": self.value,
            "band": {"min": self.band.low, "max": self.band.high, "source": self.band.source},
            "window": {"start": self.window_start, "end": self.window_end},
            "samples": self.samples,
        }


def baseline_hours(
    db: Database, settings: AlertsConfig, now: float, feature: str | None = None
) -> dict[str, list[Signals]]:
    """Every feature's (or one's) hourly signals over the baseline window, in one pass."""
    end = now - settings.window_s
    hours: dict[str, list[Signals]] = {}
    for (name, _), s in grid(db, end - settings.baseline_s, end, 3600.0, feature).items():
        hours.setdefault(name, []).append(s)
    return hours


def bands(
    db: Database,
    name: str,
    feature: FeatureConfig,
    settings: AlertsConfig,
    now: float,
    hours: dict[str, list[Signals]] | None = None,
) -> dict[str, ResolvedBand]:
    """Every signal's band for a feature: configured, or learned from the baseline
    (``hours``: :func:`baseline_hours`, when judging many features at once)."""
    health = feature.health
    found: dict[str, ResolvedBand] = {}
    learn = health is None or health.learn
    missing = []
    for signal in SIGNALS:
        configured: Band | None = health.band(signal) if health is not None else None
        if configured is not None:
            found[signal] = ResolvedBand(configured.min, configured.max, "configured")
        elif learn:
            missing.append(signal)
    if missing:
        if hours is None:
            hours = baseline_hours(db, settings, now, name)
        judged = [s for s in hours.get(name, []) if s.requests >= settings.min_samples]
        for signal in missing:
            values = [v for v in (s.value(signal) for s in judged) if v is not None]
            if len(values) >= 3:
                mean, spread = statistics.fmean(values), statistics.pstdev(values)
                # A perfectly steady baseline still allows a little noise (1% of the mean).
                spread = max(spread, abs(mean) * 0.01)
                found[signal] = ResolvedBand(
                    mean - settings.sigmas * spread, mean + settings.sigmas * spread, "baseline"
                )
    return found


def evaluate(
    name: str, signals: Signals, resolved: dict[str, ResolvedBand], start: float, end: float
) -> list[Alert]:
    alerts = []
    for signal, band in resolved.items():
        value = signals.value(signal)
        if value is not None and not band.contains(value):
            alerts.append(Alert(name, signal, value, band, start, end, signals.requests))
    return alerts


def check_drift(db: Database, config: BoundedConfig, *, now: float | None = None) -> list[Alert]:
    """Judge every feature's current window; record and log the new alerts."""
    now = time.time() if now is None else now
    settings = config.alerts
    start = now - settings.window_s
    current = feature_signals(db, start, now)
    hours = baseline_hours(db, settings, now)
    raised: list[Alert] = []
    for name, feature in config.features.items():
        signals = current.get(name)
        if signals is None or signals.requests < settings.min_samples:
            continue
        resolved = bands(db, name, feature, settings, now, hours)
        found = evaluate(name, signals, resolved, start, now)
        for alert in found:
            if not _record_once(db, alert, now, settings.window_s, settings.webhook is not None):
                continue
            log.warning(
                "drift: %s %s = %.4g outside [%s, %s] (%s band, %d requests)",
                name,
                alert.signal,
                alert.value,
                _fmt(alert.band.low),
                _fmt(alert.band.high),
                alert.band.source,
                alert.samples,
            )
            raised.append(alert)
    return raised


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _record_once(db: Database, alert: Alert, now: float, window_s: float, webhook: bool) -> bool:
    """Record ``alert`` unless the same feature and signal already alerted within the
    window; True when this call recorded it. Every worker and replica runs the check, so
    looking and inserting are one transaction under one writer: SQLite's write lock (taken
    at BEGIN IMMEDIATE), or on PostgreSQL an advisory lock per feature and signal, held to
    the commit. Without it, two workers checking the same minute both saw no alert and both
    recorded (and posted) one."""
    with db.transaction():
        if db.dialect == "postgresql":
            db.execute(
                "SELECT pg_advisory_xact_lock(hashtext(?))",
                (f"drift:{alert.feature}:{alert.signal}",),
            )
        if _recent(db, alert, now - window_s):
            return False
        _record(db, alert, now, pending=webhook)
    return True


def _recent(db: Database, alert: Alert, since: float) -> bool:
    rows = db.execute(
        "SELECT 1 FROM drift_alerts WHERE feature = ? AND signal = ? AND ts > ? LIMIT 1",
        (alert.feature, alert.signal, since),
    )
    return bool(rows)


def _record(db: Database, alert: Alert, now: float, *, pending: bool) -> None:
    db.execute(
        "INSERT INTO drift_alerts (ts, feature, signal, value, low, high, band_source,"
        " window_start, window_end, samples, delivery) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            now,
            alert.feature,
            alert.signal,
            alert.value,
            alert.band.low,
            alert.band.high,
            alert.band.source,
            alert.window_start,
            alert.window_end,
            alert.samples,
            "pending" if pending else "none",
        ),
    )


def recent_alerts(db: Database, since: float, limit: int = 100) -> list[Any]:
    return db.execute(
        "SELECT * FROM drift_alerts WHERE ts >= ? ORDER BY ts DESC LIMIT ?", (since, limit)
    )


async def deliver_pending(
    db: Database, settings: AlertsConfig, *, backoff_s: float = 0.5, timeout_s: float = 5.0
) -> int:
    """POST every pending alert to the webhook; retried with backoff; returns how many went."""
    if settings.webhook is None:
        return 0
    import aiohttp
    import orjson

    rows = await asyncio.to_thread(
        db.execute, "SELECT * FROM drift_alerts WHERE delivery = 'pending' ORDER BY id"
    )
    sent = 0
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for row in rows:
            # Claim it first: another worker or replica may be delivering the same rows;
            # only the one whose UPDATE changed the row posts it (one delivery, not N).
            claimed = await asyncio.to_thread(
                db.execute_count,
                "UPDATE drift_alerts SET delivery = 'sending'"
                " WHERE id = ? AND delivery = 'pending'",
                (row["id"],),
            )
            if not claimed:
                continue
            body = orjson.dumps(_row_json(row))
            ok, tries = False, 0
            while not ok and tries < settings.webhook_attempts:
                tries += 1
                try:
                    async with session.post(
                        settings.webhook, data=body, headers={"content-type": "application/json"}
                    ) as resp:
                        ok = 200 <= resp.status < 300
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.info("drift webhook attempt %d failed: %s", tries, exc)
                if not ok and tries < settings.webhook_attempts:
                    await asyncio.sleep(backoff_s * 2 ** (tries - 1))
            await asyncio.to_thread(
                db.execute,
                "UPDATE drift_alerts SET delivery = ?, delivery_attempts = delivery_attempts + ?"
                " WHERE id = ?",
                ("sent" if ok else "failed", tries, row["id"]),
            )
            if not ok:
                log.error("drift alert %s not delivered after %d attempts", row["id"], tries)
            sent += ok
    return sent


def _row_json(row: Any) -> dict[str, Any]:
    band = ResolvedBand(row["low"], row["high"], row["band_source"])
    alert = Alert(
        row["feature"],
        row["signal"],
        float(row["value"]),
        band,
        float(row["window_start"]),
        float(row["window_end"]),
        int(row["samples"]),
    )
    return {**alert.as_json(), "id": int(row["id"]), "ts": float(row["ts"])}


async def watch_forever(db: Database, config: Callable[[], BoundedConfig]) -> None:
    """The gateway's background task: every ``alerts.interval_s`` (first after one interval,
    so start-up does no extra work), check every feature, then deliver what is pending."""
    while True:
        await asyncio.sleep(config().alerts.interval_s)
        current = config()
        try:
            await asyncio.to_thread(check_drift, db, current)
            await deliver_pending(db, current.alerts)
        except Exception:  # a broken check must not end the task (or the gateway)
            log.exception("drift check failed")
