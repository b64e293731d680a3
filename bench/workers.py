"""Workers: requests/s of ``bounded serve --workers N`` with economics on and off, beside
LiteLLM proxy with ``--num_workers N``, interleaved in one run against one stand-in.

    .venv/bin/python bench/workers.py [--workers 1,2] [--concurrency 64,256]
                                      [--duration S] [--skip-litellm] [--requests N]
                                      [--client python|wrk] [--standin python|nginx]
                                      [--compare-src DIR] [--skip-noecon] [--prefill N]

For each worker count N: ``bounded_wN`` (the ledger, a hard budget and a rate limit, both too
large to refuse: the same feature as ``bench/gateway_overhead.py``), ``noecon_wN`` (the ledger
only) and ``litellm_wN``. It prints, from the same run:

* requests/s at each concurrency (alternating blocks, order rotating; each server is left to
  go idle after its block) with p50/p99 under that load, and server CPU time per request:
  user + system seconds of the whole process tree (supervisor, owner and workers; LiteLLM's
  workers) from /proc, over completed requests;
* where the cores went in each endpoint's blocks: the server's tree, the load client, the
  stand-in, everything else (the kernel's network work, other processes) and idle time (all
  cores, from /proc/stat);
* scaling: ``bounded_wN / bounded_w1`` requests/s, and LiteLLM's the same; beside it the
  ceiling this machine puts on it (``ceiling_wN_cC_rps_ratio``): what N workers could reach
  if each request cost them no more CPU than it costs one worker, on the cores the load
  client and the stand-in leave, at their measured CPU per request;
* economics on against off per worker count: the added median of sequential keep-alive
  requests (``bounded_wN - noecon_wN``) and the requests/s ratio at each concurrency;
* bounded against LiteLLM at each worker count and concurrency (requests/s ratio);
* with ``--compare-src DIR`` (A/B of a change): ``compare_wN``, the economics server run from
  another copy of bounded, its own scaling, and B/A requests/s and CPU per request at each
  worker count (a change can move one worker and two differently; noise moves both alike);
* with ``--prefill N``, every bounded starts with N traces (with text) and N ledger rows
  already in its stores, as a gateway that has served a while (an empty store's indexes
  are cheaper to insert into than a full one's: ``bench/trace_writer.py --grow``);
* the 1-minute load average before and after (other work on the machine slows every
  endpoint alike, since blocks are interleaved: compare ratios, not absolute figures).

The load client and the stand-in share the cores with the servers. By default they are the
Python ones (``harness_client.Client``, ``bench/standin_upstream.py``); ``--client wrk
--standin nginx`` uses C programs from Debian's packages instead (``apt-get install -y wrk
nginx-light``; ``harness_native``), which need about 35 µs of CPU per request between them
against about 55 for the Python pair. The sequential latency figures always use the Python
client, which checks every reply. The last line of stdout is one JSON object with every
figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness_client import Errors, check_headers, read_ledger, start
from harness_endpoints import (
    ADMIN_KEY,
    ECONOMICS,
    FEATURE,
    LEDGER_ONLY,
    LITELLM_KEY,
    RATELIMIT_HEADER,
    Endpoint,
    Launchers,
    _merge,
    ensure_litellm,
)
from harness_load import Sequential, Throughput, sequential, throughput
from harness_native import need, nginx_standin, throughput_wrk
from harness_procs import Processes, log, tree_rss_mb
from harness_stats import _git_commit, _r, percentile


def endpoints(procs: Processes, args: argparse.Namespace) -> list[Endpoint]:
    launchers = Launchers(procs, prefill=args.prefill)
    econ = {"model": FEATURE, "api_key": ADMIN_KEY}
    out = [Endpoint("direct", "direct", None, health_path="/health")]
    for n in args.workers:
        server: dict[str, Any] = {"server": {"workers": n}}
        if args.no_telemetry:
            server["telemetry"] = {"enabled": False}
        elif args.trace_all:
            server["telemetry"] = {"max_traces_per_s": None}
        out.append(
            Endpoint(
                f"bounded_w{n}",
                f"bounded ×{n}, economics",
                launchers.bounded(f"bounded_w{n}", _merge(ECONOMICS, server)),
                expect_headers=(RATELIMIT_HEADER,),
                **econ,
            )
        )
        if args.compare_src is not None:  # A/B: the same, from another copy of bounded
            out.append(
                Endpoint(
                    f"compare_w{n}",
                    f"B ×{n}, economics",
                    launchers.bounded(
                        f"compare_w{n}", _merge(ECONOMICS, server), src=Path(args.compare_src)
                    ),
                    expect_headers=(RATELIMIT_HEADER,),
                    **econ,
                )
            )
        if not args.skip_noecon:
            out.append(
                Endpoint(
                    f"noecon_w{n}",
                    f"bounded ×{n}, ledger only",
                    launchers.bounded(f"noecon_w{n}", _merge(LEDGER_ONLY, server)),
                    **econ,
                )
            )
        if not args.skip_litellm:
            out.append(
                Endpoint(
                    f"litellm_w{n}",
                    f"LiteLLM ×{n}",
                    launchers.litellm_workers(n, f"litellm_w{n}"),
                    api_key=LITELLM_KEY,
                    health_path="/health/liveliness",
                )
            )
    return out


async def run(args: argparse.Namespace, procs: Processes, workdir: Path) -> dict[str, Any]:
    eps = endpoints(procs, args)
    direct = eps[0]
    load_before = os.getloadavg()
    log(f">> starting the stand-in upstream ({args.standin})")
    spawned = time.perf_counter()
    standin = (
        nginx_standin(procs, workdir)
        if args.standin == "nginx"
        else Launchers(procs).standin(workdir)
    )
    await start(direct, standin, spawned, args.start_timeout)
    for ep in eps[1:]:
        assert ep.launch is not None
        log(f">> starting {ep.label}")
        spawned = time.perf_counter()
        await start(ep, ep.launch(workdir, direct.port), spawned, args.start_timeout)
        log(f"   ready in {ep.startup_s[-1]:.2f}s")
    await asyncio.sleep(1.0)
    for ep in eps:
        ep.rss_start_mb = tree_rss_mb(ep.pid)
        if ep.expect_headers:
            await check_headers(ep)
    errors = Errors()
    log(f">> sequential: {args.requests} per endpoint, interleaved")
    seq = await sequential(eps, args.requests // 5, args.requests, stream=False, errors=errors)
    loads: dict[int, Throughput] = {}
    for c in args.concurrency:
        log(
            f">> load ({args.client}): {c} concurrent, {args.duration}s per endpoint"
            f" in {args.block}s blocks"
        )
        if args.client == "wrk":
            loads[c] = await throughput_wrk(
                eps, c, args.duration, args.block, errors, workdir, standin_pid=direct.pid
            )
        else:
            loads[c] = await throughput(
                eps, c, args.duration, args.block, errors, standin_pid=direct.pid
            )
    for ep in eps:
        ep.rss_after_mb = max(ep.peak_rss_mb, tree_rss_mb(ep.pid))
    await asyncio.sleep(0.3)
    for ep in eps:
        read_ledger(ep, errors)
    out = figures(eps, seq, loads, errors, args)
    out["loadavg_before"] = [round(x, 2) for x in load_before]
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out | {"_endpoints": eps}


def figures(
    eps: list[Endpoint],
    seq: Sequential,
    loads: dict[int, Throughput],
    errors: Errors,
    args: argparse.Namespace,
) -> dict[str, Any]:
    r = _r
    out: dict[str, Any] = {}
    p50 = {ep.name: percentile(seq.total_ms[ep.name], 0.5) for ep in eps}
    for ep in eps:
        n = ep.name
        out[f"{n}_p50_ms"] = r(p50[n])
        out[f"{n}_added_p50_ms"] = r(p50[n] - p50["direct"]) if n != "direct" else None
        out[f"{n}_rss_mb"] = r(ep.rss_start_mb, 1)
        out[f"{n}_rss_after_load_mb"] = r(ep.rss_after_mb, 1)
        out[f"{n}_errors"] = errors.count(n)
        if ep.ledger:
            out[f"{n}_ledger_rows"] = ep.ledger["rows"]
        for c, t in loads.items():
            out[f"{n}_c{c}_rps"] = r(t.rps(n), 1)
            out[f"{n}_c{c}_p50_ms"] = r(percentile(t.latency_ms[n], 0.5))
            out[f"{n}_c{c}_p99_ms"] = r(percentile(t.latency_ms[n], 0.99))
            cpu = t.cpu_s.get(n, 0.0)
            ok, seconds = t.ok[n], t.seconds.get(n, 0.0)
            out[f"{n}_c{c}_cpu_us_per_req"] = r(cpu / ok * 1e6, 1) if ok else None
            # where the machine's cores went during this endpoint's blocks
            for part, spent in (
                ("server", cpu),
                ("client", t.client_cpu_s.get(n, 0.0)),
                ("standin", t.standin_cpu_s.get(n, 0.0)),
                ("idle", t.idle_s.get(n, 0.0)),
            ):
                out[f"{n}_c{c}_{part}_cores"] = r(spent / seconds, 2) if seconds else None
                if part not in ("server", "idle"):
                    out[f"{n}_c{c}_{part}_cpu_us_per_req"] = r(spent / ok * 1e6, 1) if ok else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return r(a / b, 3) if a is not None and b else None

    names = {ep.name for ep in eps}
    first = args.workers[0]
    for n in args.workers:
        if f"noecon_w{n}" in names:
            out[f"economics_w{n}_added_p50_ms"] = r(p50[f"bounded_w{n}"] - p50[f"noecon_w{n}"])
        for c in loads:
            rps = out[f"bounded_w{n}_c{c}_rps"]
            if f"noecon_w{n}" in names:
                out[f"economics_w{n}_c{c}_rps_ratio"] = ratio(rps, out[f"noecon_w{n}_c{c}_rps"])
            out[f"scaling_w{n}_c{c}_rps_ratio"] = ratio(rps, out[f"bounded_w{first}_c{c}_rps"])
            if n != first:
                out[f"ceiling_w{n}_c{c}_rps_ratio"] = ceiling(out, n, first, c)
            if f"compare_w{n}" in names:
                b_rps = out[f"compare_w{n}_c{c}_rps"]
                out[f"compare_scaling_w{n}_c{c}_rps_ratio"] = ratio(
                    b_rps, out[f"compare_w{first}_c{c}_rps"]
                )
                out[f"b_vs_a_w{n}_c{c}_rps_ratio"] = ratio(b_rps, rps)
                out[f"b_vs_a_w{n}_c{c}_cpu_per_req_ratio"] = ratio(
                    out[f"compare_w{n}_c{c}_cpu_us_per_req"],
                    out[f"bounded_w{n}_c{c}_cpu_us_per_req"],
                )
            if f"litellm_w{n}" in names:
                out[f"litellm_scaling_w{n}_c{c}_rps_ratio"] = ratio(
                    out[f"litellm_w{n}_c{c}_rps"], out[f"litellm_w{first}_c{c}_rps"]
                )
                out[f"bounded_vs_litellm_w{n}_c{c}_rps_ratio"] = ratio(
                    rps, out[f"litellm_w{n}_c{c}_rps"]
                )
    out["errors"] = {name: dict(c.most_common(5)) for name, c in errors.by_endpoint.items()}
    out["settings"] = {
        "workers": args.workers,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "block_s": args.block,
        "requests": args.requests,
        "client": args.client,
        "standin": args.standin,
        "cpus": os.cpu_count(),
        "bounded_commit": _git_commit(),
        "compare_src": args.compare_src,
        "prefill": args.prefill,
    }
    return out


def ceiling(out: dict[str, Any], workers: int, first: int, c: int) -> float | None:
    """The most ``workers`` workers could serve over ``first`` on this machine, if they cost
    no more CPU per request than ``first`` do (no coordination at all): the cores left by
    the load client and the stand-in, at their own measured CPU per request, bound it.

    ``first``'s requests/s R1 at s1 µs of server CPU per request, with the client and the
    stand-in at c µs per request: N workers, each as cheap as ``first``, serve at most
    ``min(N / first x R1, cores / (s1 + c))``; divided by R1, the ceiling on the ratio. The
    kernel's own network work is left out, so the true ceiling is lower still."""
    base = f"bounded_w{first}_c{c}"
    r1, s1 = out.get(f"{base}_rps"), out.get(f"{base}_cpu_us_per_req")
    client = out.get(f"{base}_client_cpu_us_per_req") or 0.0
    standin = out.get(f"{base}_standin_cpu_us_per_req") or 0.0
    if not r1 or not s1:
        return None
    cores = os.cpu_count() or 1
    best = min(workers / first * r1, cores / ((s1 + client + standin) / 1e6))
    return _r(best / r1, 3)


def report(eps: list[Endpoint], out: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=180)

    def f(value: Any, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    console.print(
        f"[bold]workers[/]: {os.cpu_count()} CPUs; load average before "
        f"{out['loadavg_before']}, after {out['loadavg_after']}; "
        f"{args.duration}s per endpoint and concurrency in {args.block}s blocks",
        highlight=False,
    )
    table = Table(title="requests/s, latency under load, server CPU", title_justify="left")
    table.add_column("endpoint", no_wrap=True)
    table.add_column("seq added p50 ms", justify="right")
    for c in args.concurrency:
        for col in (f"rps @{c}", f"p50 @{c}", f"p99 @{c}", f"CPU µs/req @{c}"):
            table.add_column(col, justify="right")
    table.add_column("RSS MB start/load", justify="right")
    table.add_column("errors", justify="right")
    for ep in eps:
        n = ep.name
        cells = [ep.label, f(out[f"{n}_added_p50_ms"], 3)]
        for c in args.concurrency:
            cells += [
                f(out[f"{n}_c{c}_rps"]),
                f(out[f"{n}_c{c}_p50_ms"], 2),
                f(out[f"{n}_c{c}_p99_ms"], 2),
                f(out[f"{n}_c{c}_cpu_us_per_req"]),
            ]
        cells += [f"{f(out[f'{n}_rss_mb'], 1)}/{f(out[f'{n}_rss_after_load_mb'], 1)}"]
        cells += [str(out[f"{n}_errors"])]
        table.add_row(*cells)
    console.print(table)
    table = Table(
        title=f"where the {os.cpu_count()} cores went (cores busy; CPU µs per request): "
        f"load client {args.client}, stand-in {args.standin}",
        title_justify="left",
    )
    table.add_column("endpoint", no_wrap=True)
    for c in args.concurrency:
        for col in ("server", "client", "stand-in", "other", "idle"):
            table.add_column(f"{col} @{c}", justify="right")
    cpus = os.cpu_count() or 1
    for ep in eps:
        n = ep.name
        cells = [ep.label]
        for c in args.concurrency:
            cores = [out[f"{n}_c{c}_{part}_cores"] for part in ("server", "client", "standin")]
            per_req = [
                out[f"{n}_c{c}_cpu_us_per_req"],
                out[f"{n}_c{c}_client_cpu_us_per_req"],
                out[f"{n}_c{c}_standin_cpu_us_per_req"],
            ]
            cells += [f"{f(k, 2)} ({f(u)})" for k, u in zip(cores, per_req, strict=True)]
            idle = out[f"{n}_c{c}_idle_cores"] or 0.0
            other = cpus - sum(k or 0.0 for k in cores) - idle  # the kernel, other processes
            cells += [f(max(0.0, other), 2), f(idle, 2)]
        table.add_row(*cells)
    console.print(table)
    table = Table(title="ratios (same run)", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in out.items():
        if key.endswith("_ratio") or key.startswith("economics_"):
            table.add_row(key, f(value, 3))
    console.print(table)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    def ints(text: str) -> list[int]:
        return [int(part) for part in text.split(",") if part]

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=ints, default=[1, 2])
    p.add_argument("--concurrency", type=ints, default=[64, 256])
    p.add_argument("--duration", type=float, default=6.0, help="seconds per endpoint and load")
    p.add_argument("--block", type=float, default=2.0)
    p.add_argument("--requests", type=int, default=500, help="sequential, per endpoint")
    p.add_argument("--start-timeout", type=float, default=90.0)
    p.add_argument("--skip-litellm", action="store_true")
    p.add_argument("--skip-noecon", action="store_true", help="no ledger-only servers")
    p.add_argument(
        "--compare-src",
        help="A/B: also run bounded from this folder (one holding the bounded package, e.g. a"
        " scratch copy's src/) at each worker count, interleaved, and print B/A ratios",
    )
    p.add_argument(
        "--no-telemetry",
        action="store_true",
        help="every bounded with telemetry.enabled: false (what scaling is without traces)",
    )
    p.add_argument(
        "--trace-all",
        action="store_true",
        help="every bounded traces every request (telemetry.max_traces_per_s: null; the"
        " default stores 100 traces a second per worker, then only failures)",
    )
    p.add_argument(
        "--client",
        choices=("python", "wrk"),
        default="python",
        help="load client for the concurrent blocks: the asyncio one, or wrk (C; apt wrk)",
    )
    p.add_argument(
        "--standin",
        choices=("python", "nginx"),
        default="python",
        help="stand-in upstream: bench/standin_upstream.py, or nginx (C; apt nginx-light)",
    )
    p.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="traces and ledger rows in each bounded's stores before it starts (the stores"
        " of a gateway that has served a while; bench/harness_prefill.py)",
    )
    p.add_argument("--keep-logs", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="bounded-workers-"))
    try:
        if args.client == "wrk":
            need("wrk", "wrk")  # before minutes of start-up, not after
        if args.standin == "nginx":
            need("nginx", "nginx-light")
        if not args.skip_litellm:
            ensure_litellm()
        import uvloop

        out = uvloop.run(run(args, procs, workdir))
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        log(f"error: {exc}")
        return 1
    finally:
        procs.stop_all()
        if args.keep_logs:
            log(f"configs and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    eps = out.pop("_endpoints")
    report(eps, out, args)
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
