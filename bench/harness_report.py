"""The printed report of ``gateway_overhead.py``: rich tables of latency, load and
resources, the comparisons' ratios, economics, targets and errors.
"""

from __future__ import annotations

import sys
from typing import Any

from harness_client import Errors
from harness_endpoints import Endpoint
from harness_stats import COMPARISONS


def report(endpoints: list[Endpoint], out: dict[str, Any], errors: Errors) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=132)

    def fmt(value: Any, unit: str = "", digits: int = 2) -> str:
        if value is None:
            return "-"
        return f"{value:,.{digits}f}{unit}"

    s = out["settings"]
    clients = s["concurrency"]
    console.print(
        f"[bold]gateway overhead[/]: {s['requests']} sequential + {s['stream_requests']} "
        f"streamed requests per endpoint (after {s['warmup']} warm-up), "
        f"{s['concurrency']} concurrent clients x {s['duration_s']}s per endpoint in "
        f"{s['block_s']}s blocks; {s['cpus']} CPUs, load {s['loadavg_1m']}; client: "
        f"{s['client']}; bounded from {s['bounded_src']}"
        + (f" ({s['bounded_commit']})" if s["bounded_commit"] else "")
        + (f", bounded_b from {s['bounded_b_src']}" if s["bounded_b_src"] else ""),
        highlight=False,
    )
    base = endpoints[0].name
    table = Table(title="latency (ms), sequential keep-alive, interleaved", title_justify="left")
    for col in (
        "endpoint",
        "p50",
        "p99",
        "added p50",
        "added p99",
        "added p99 (seg)",
        "stream TTFB p50",
        "TTFB added p50",
        "TTFB added p99",
        "errors",
    ):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for ep in endpoints:
        n = ep.name
        table.add_row(
            ep.label,
            fmt(out[f"{n}_p50_ms"], digits=3),
            fmt(out[f"{n}_p99_ms"], digits=3),
            "-" if n == base else fmt(out[f"{n}_added_p50_ms"], digits=3),
            "-" if n == base else fmt(out[f"{n}_added_p99_ms"], digits=3),
            "-" if n == base else fmt(out[f"{n}_added_p99_seg_ms"], digits=3),
            fmt(out[f"{n}_ttfb_p50_ms"], digits=3),
            "-" if n == base else fmt(out[f"{n}_ttfb_added_p50_ms"], digits=3),
            "-" if n == base else fmt(out[f"{n}_ttfb_added_p99_ms"], digits=3),
            str(out[f"{n}_errors"]),
        )
    console.print(table)

    table = Table(
        title=f"load: {s['concurrency']} concurrent clients; resources", title_justify="left"
    )
    for col in (
        "endpoint",
        "req/s",
        "p50 ms",
        "p99 ms",
        "server CPU µs/req",
        "RSS start MB",
        "RSS load max MB",
        "health s",
        "ready s (first 200)",
    ):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for ep in endpoints:
        n = ep.name
        table.add_row(
            ep.label,
            fmt(out[f"{n}_rps"], digits=0),
            fmt(out[f"{n}_load_p50_ms"]),
            fmt(out[f"{n}_load_p99_ms"]),
            fmt(out[f"{n}_cpu_us_per_req"], digits=0),
            fmt(out[f"{n}_rss_mb"], digits=1),
            fmt(out[f"{n}_rss_after_load_mb"], digits=1),
            fmt(out[f"{n}_health_s"], digits=3),
            fmt(out[f"{n}_startup_s"], digits=3),
        )
    console.print(table)
    if base == "direct":
        console.print(
            "[dim]direct = the stand-in itself (its process for RSS, CPU and start-up);"
            " its req/s is bounded by the client sharing the 2 cores. added p99 (seg): the p99"
            " of each of 10 consecutive slices of the run, median taken, through minus direct;"
            " less moved by bursts of outside load than the plain p99, which the target uses.[/]"
        )
    if "bounded_noecon_rps" in out:
        console.print(
            "[dim]bounded (and bounded_b) = ledger + one budget + one rate limit on the"
            " feature called; bounded_noecon = the same with the ledger only.[/]"
        )

    for a, b in COMPARISONS:
        key = f"{a}_vs_{b}"
        if f"{key}_rps_ratio" not in out:
            continue
        table = Table(title=f"{a} / {b}", title_justify="left")
        table.add_column("figure")
        table.add_column("ratio", justify="right")
        table.add_column("reading")
        rows = [
            ("added latency p50", out[f"{key}_added_p50_ratio"], "lower is better"),
            ("added latency p99", out[f"{key}_added_p99_ratio"], "lower is better"),
            ("stream TTFB added p50", out[f"{key}_ttfb_added_ratio"], "lower is better"),
            (f"requests/s at {clients} concurrent", out[f"{key}_rps_ratio"], "higher is better"),
            ("server CPU per request", out[f"{key}_cpu_per_req_ratio"], "lower is better"),
            ("RSS after start", out[f"{key}_rss_ratio"], "lower is better"),
            ("start-up (first 200)", out[f"{key}_startup_ratio"], "lower is better"),
        ]
        for label, value, reading in rows:
            table.add_row(label, "-" if value is None else f"{value:.3f}x", reading)
        console.print(table)

    if out.get("economics_rps_ratio") is not None:
        e, n = "bounded", "bounded_noecon"
        table = Table(
            title="economics: bounded (ledger + budget + rate limit) vs bounded_noecon "
            "(ledger only)",
            title_justify="left",
        )
        for col in ("figure", e, n, "econ - noecon", "econ / noecon"):
            table.add_column(col, justify="left" if col == "figure" else "right")

        def row(label: str, fig: str, diff: Any, ratio: Any, digits: int = 3) -> None:
            a, b = out.get(f"{e}_{fig}"), out.get(f"{n}_{fig}")
            if diff is None and a is not None and b is not None:
                diff = a - b
            if ratio is None and a is not None and b:
                ratio = a / b
            table.add_row(
                label,
                fmt(a, digits=digits),
                fmt(b, digits=digits),
                "-" if diff is None else f"{diff:+,.{digits}f}",
                "-" if ratio is None else f"{ratio:.3f}x",
            )

        row("latency p50 ms", "p50_ms", out["economics_added_p50_ms"], None)
        row("latency p99 ms", "p99_ms", out["economics_added_p99_ms"], None)
        row("latency p99 (seg) ms", "p99_seg_ms", out["economics_added_p99_seg_ms"], None)
        row(
            "added p50 ms (vs direct)",
            "added_p50_ms",
            out["economics_added_p50_ms"],
            out["economics_added_p50_ratio"],
        )
        row(
            "added p99 ms (vs direct)",
            "added_p99_ms",
            out["economics_added_p99_ms"],
            out["economics_added_p99_ratio"],
        )
        row("stream TTFB p50 ms", "ttfb_p50_ms", out["economics_ttfb_added_p50_ms"], None)
        row(f"req/s at {clients} concurrent", "rps", None, out["economics_rps_ratio"], digits=0)
        row("load p50 ms", "load_p50_ms", None, None)
        row("server CPU µs/req", "cpu_us_per_req", out["economics_cpu_us_per_req"], None, 0)
        row("ledger rows written", "ledger_rows", None, None, digits=0)
        row("ledger cost USD", "ledger_cost_usd", None, None, digits=6)
        console.print(table)
        headers = out.get(f"{e}_headers") or {}
        console.print(
            f"[dim]{e} response headers: "
            + ", ".join(f"{k}: {v}" for k, v in headers.items())
            + "; budget and rate limit far above what the run uses, so never refused.[/]",
            highlight=False,
        )

    table = Table(title="targets", title_justify="left")
    for col in ("target", "value", "limit", "result"):
        table.add_column(col, justify="left" if col == "target" else "right")
    for t in out["targets"].values():
        verdict = (
            "[dim]n/a[/]"
            if t["passed"] is None
            else "[green]PASS[/]"
            if t["passed"]
            else "[red]FAIL[/]"
        )
        table.add_row(
            t["label"],
            "-" if t["value"] is None else f"{t['value']:.3f}",
            f"{t['op']} {t['limit']}",
            verdict,
        )
    console.print(table)

    for name, counter in errors.by_endpoint.items():
        console.print(f"[red]{name}: {sum(counter.values())} error(s)[/]")
        for what, count in counter.most_common(5):
            console.print(f"  {count} x {what}", highlight=False)
