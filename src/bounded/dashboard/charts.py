"""Charts drawn on the server as SVG: axes with ticks and units, gridlines, a legend.

    svg = line_chart([Series("p95", points)], unit="ms", title="Latency")
    svg = bar_chart(points, unit="requests")

Points are ``(unix time, value or None)``; a None is a gap (no traffic), not a zero. The
output is a string of SVG markup, escaped, safe to put into a template with ``|safe``.
Nothing runs in the browser, so the dashboard works offline and prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

PALETTE = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
Point = tuple[float, float | None]

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 30


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[Point]
    color: str | None = None


def nice_ticks(high: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(high / step) + 1)]


def fmt(value: float, unit: str = "") -> str:
    if unit == "USD":
        return usd(value)
    if unit == "%":
        return f"{value * 100:.0f}%" if value >= 0.1 or value == 0 else f"{value * 100:.1f}%"
    suffix = f" {unit}" if unit and unit not in ("requests",) else ""
    if abs(value) >= 1000:
        return f"{value / 1000:.3g}k{suffix}"
    if value == int(value):
        return f"{int(value)}{suffix}"
    return f"{value:.3g}{suffix}"


def _tick(value: float, unit: str) -> str:
    """Axis labels: as short as the value allows ($0.00006, not $0.000060)."""
    text = fmt(value, unit)
    if unit == "USD" and "." in text and abs(value) < 1:
        text = text.rstrip("0").rstrip(".")
    return text


def usd(value: float) -> str:
    """Dollars readable at any size: $1,234.56, $0.42, $0.0063, $0.000063 (no exponents)."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    digits = max(2, 1 - math.floor(math.log10(abs(value))))
    return f"${value:.{digits}f}"


def _time_label(ts: float, span: float) -> str:
    when = datetime.fromtimestamp(ts, UTC)
    return when.strftime("%H:%M") if span <= 2 * 86400 else when.strftime("%b %d")


def _frame(
    ticks: list[float], unit: str, x0: float, x1: float, label: str, width: int = W
) -> tuple[list[str], float]:
    top = ticks[-1] or 1.0
    parts = [f"<title>{escape(label)}</title>"]
    plot_w, plot_h = width - LEFT - RIGHT, H - TOP - BOTTOM
    for t in ticks:
        y = TOP + plot_h - plot_h * t / top
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_tick(t, unit))}</text>"
        )
    span = max(x1 - x0, 1.0)
    for i in range(5):
        ts = x0 + span * i / 4
        x = LEFT + plot_w * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{H - 10}" text-anchor="{anchor}">'
            f"{_time_label(ts, span)}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{width - RIGHT}"'
        f' y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>'
    )
    return parts, top


def _wrap(parts: list[str], label: str, legend: list[tuple[str, str]], width: int = W) -> str:
    keys = "".join(
        f'<span class="key"><svg viewBox="0 0 10 10"><rect width="10" height="10" rx="2"'
        f' fill="{c}"/></svg>{escape(n)}</span>'
        for n, c in legend
    )
    svg = (
        f'<svg class="chart" viewBox="0 0 {width} {H}" role="img" aria-label="{escape(label)}"'
        f' preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg>"
    )
    return f'<figure class="chart-box">{svg}<figcaption>{keys}</figcaption></figure>'


def line_chart(
    series: list[Series],
    *,
    unit: str = "",
    label: str = "",
    start: float,
    end: float,
    width: int = W,
) -> str:
    """``width``: the drawing's own units; a narrow panel wants fewer, so text stays legible."""
    values = [v for s in series for _, v in s.points if v is not None]
    if not values:
        return _empty(label)
    ticks = nice_ticks(max(values))
    parts, top = _frame(ticks, unit, start, end, label, width)
    plot_w, plot_h = width - LEFT - RIGHT, H - TOP - BOTTOM
    span = max(end - start, 1.0)
    legend = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        legend.append((s.name, color))
        runs: list[list[str]] = [[]]
        for ts, v in s.points:
            if v is None:
                runs.append([])
                continue
            x = LEFT + plot_w * (ts - start) / span
            y = TOP + plot_h - plot_h * v / top
            runs[-1].append(f"{x:.1f},{y:.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
            elif run:
                parts.append(
                    f'<polyline class="line" fill="none" stroke="{color}" points="{" ".join(run)}">'
                    f"<title>{escape(s.name)}</title></polyline>"
                )
    return _wrap(parts, label, legend, width)


def bar_chart(
    series: list[Series], *, unit: str = "", label: str = "", start: float, end: float,
    bucket_s: float,
) -> str:  # fmt: skip
    """Stacked bars per bucket (``series`` in stacking order)."""
    totals: dict[float, float] = {}
    for s in series:
        for ts, v in s.points:
            totals[ts] = totals.get(ts, 0.0) + (v or 0.0)
    if not any(totals.values()):
        return _empty(label)
    ticks = nice_ticks(max(totals.values()))
    parts, top = _frame(ticks, unit, start, end, label)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    span = max(end - start, 1.0)
    width = max(1.0, plot_w * bucket_s / span - 2)
    base: dict[float, float] = {}
    legend = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        legend.append((s.name, color))
        for ts, v in s.points:
            if not v:
                continue
            below = base.get(ts, 0.0)
            x = LEFT + plot_w * (ts - start) / span + 1
            h = plot_h * v / top
            y = TOP + plot_h - plot_h * below / top - h
            base[ts] = below + v
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}"'
                f' fill="{color}"><title>{escape(s.name)} {_time_label(ts, span)}:'
                f" {escape(fmt(v, unit))}</title></rect>"
            )
    return _wrap(parts, label, legend)


def meter(used: float, limit: float) -> str:
    """A horizontal gauge of spend against a budget."""
    share = 0.0 if limit <= 0 else min(used / limit, 1.0)
    level = "ok" if share < 0.8 else "warn" if share < 1.0 else "over"
    return (
        f'<svg class="meter {level}" viewBox="0 0 200 10" preserveAspectRatio="none"'
        f' role="img" aria-label="{share * 100:.0f}% used"><rect class="track" width="200"'
        f' height="10" rx="5"/><rect class="fill" width="{200 * share:.1f}" height="10" rx="5"/>'
        "</svg>"
    )


def sparkline(values: list[float | None], *, color: str = PALETTE[0]) -> str:
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return '<span class="muted">—</span>'
    high, low = max(present), min(present)
    rng = (high - low) or 1.0
    pts = [
        f"{i * 100 / max(len(values) - 1, 1):.1f},{18 - 16 * (v - low) / rng:.1f}"
        for i, v in enumerate(values)
        if v is not None
    ]
    return (
        '<svg class="spark" viewBox="0 0 100 20" preserveAspectRatio="none">'
        f'<polyline fill="none" stroke="{color}" stroke-width="1.5"'
        f' points="{" ".join(pts)}"/></svg>'
    )


def _empty(label: str) -> str:
    return (
        f'<figure class="chart-box empty-chart"><div>No data for {escape(label.lower())} yet'
        " in this window.</div></figure>"
    )
