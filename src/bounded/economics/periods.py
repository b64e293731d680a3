"""Calendar budget periods in UTC: when the current one started and when it resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

PERIODS = ("hour", "day", "week", "month", "total")


def window(period: str, now: float) -> tuple[float, float | None]:
    """(start, reset) of the period containing ``now``; ``total`` never resets."""
    if period == "total":
        return 0.0, None
    t = datetime.fromtimestamp(now, UTC)
    if period == "hour":
        start = t.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    elif period == "week":
        day = t.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
    return start.timestamp(), end.timestamp()


def describe_reset(reset: float | None) -> str:
    if reset is None:
        return "never (a total budget)"
    return datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d %H:%M UTC")
