"""Gateway overhead: the same stand-in upstream called directly, through bounded, and
through LiteLLM proxy, interleaved in one run.

    .venv/bin/python bench/gateway_overhead.py [--requests N] [--duration S] [--skip-litellm]

What it measures, for every endpoint in one run:

* sequential latency (one keep-alive connection per endpoint, requests round-robin across
  endpoints with a rotating order): p50 and p99, and *added* = through - direct, per
  percentile;
* streaming time to first byte (the first SSE ``data:`` line) and its added part;
* requests/s at 64 concurrent keep-alive clients, in alternating blocks (each block runs
  one endpoint alone, the order rotates every round), plus server CPU per request;
* RSS of each server process tree (``/proc/PID/status`` VmRSS, children included) after
  start-up and after the load; start-up time (spawn -> health endpoint -> first 200).

Economics are on in every bounded figure: requests go to a feature (``bench``) over a priced
model, so each one writes a non-zero cost row to the ledger (always on in bounded) and
passes one budget and one rate limit, both too large ever to refuse. ``bounded_noecon`` is
the same gateway and feature without the budget and the rate limit (ledger only),
interleaved in the same run; ``economics_added_p50_ms`` / ``economics_added_p99_ms`` are
bounded - bounded_noecon and ``economics_rps_ratio`` is bounded / bounded_noecon req/s.
Before measuring, a response from each bounded with a rate limit is checked to carry
``x-ratelimit-remaining-requests``; after, each one's ledger is read back (rows, cost).

The client is a raw asyncio protocol on uvloop with the C ``httptools`` response parser and
pre-built request bytes (no aiohttp/httpx objects per request), so it is not the
bottleneck for the gateways. It shares the two cores with the servers, so the *direct*
requests/s is a floor, not the stand-in's real capacity.

Machine noise (other work on the same cores) hits every endpoint alike because requests
are interleaved; compare the ratios, not absolute numbers across runs.

The endpoint list is data (:func:`build_endpoints`): a second bounded with another config
(e.g. economics on vs off) is one more ``Endpoint(...)`` built with
``launchers.bounded(name, extra_config)`` plus, if wanted, one more pair in ``COMPARISONS``
(``harness_stats.py``); every figure and JSON key is per endpoint name. ``--compare-src DIR``
already does this for an A/B of a code change: a second bounded run from another source
folder, interleaved.

    --bounded-src DIR    run bounded from DIR (a folder holding the ``bounded`` package)
    --compare-src DIR    add ``bounded_b`` from DIR and print bounded_b/bounded ratios
    --compare-config Y   YAML merged into bounded_b's config only (e.g. telemetry off)
    --skip-noecon        leave out bounded_noecon (no economics_* figures)
    --telemetry          add bounded_notelemetry (telemetry.enabled: false): telemetry_*
                         figures are bounded (every request traced and stored, metrics
                         counted) minus it
    --keep-logs          keep the generated configs and server logs

The last line of stdout is one JSON object with every figure (``<endpoint>_<figure>``,
``<a>_vs_<b>_<figure>_ratio``, ``targets``, ``settings``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

import harness_endpoints
from harness_client import Errors, check_headers, read_ledger, start
from harness_endpoints import (
    ADMIN_KEY,
    ECONOMICS,
    FEATURE,
    LEDGER_ONLY,
    LITELLM_KEY,
    NO_TELEMETRY,
    RATELIMIT_HEADER,
    VALIDATED,
    Endpoint,
    Launchers,
    _merge,
    ensure_litellm,
)
from harness_load import sequential, throughput
from harness_procs import Processes, log, tree_rss_mb
from harness_report import report
from harness_stats import summarize


def build_endpoints(launchers: Launchers, args: argparse.Namespace) -> list[Endpoint]:
    """The endpoints of this run, baseline first. Add a variant here, e.g.

    Endpoint("bounded-x", "bounded, x on",
             launchers.bounded("bounded-x", {"features": {...}}), api_key=ADMIN_KEY)
    """
    econ = {"model": FEATURE, "api_key": ADMIN_KEY, "expect_headers": (RATELIMIT_HEADER,)}
    endpoints = [
        Endpoint("direct", "direct", None, health_path="/health"),
        Endpoint(
            "bounded",
            "bounded",
            launchers.bounded("bounded", ECONOMICS, src=args.bounded_src),
            **econ,
        ),
    ]
    if not args.skip_noecon:  # the same gateway with the ledger only
        endpoints.append(
            Endpoint(
                "bounded_noecon",
                "bounded_noecon",
                launchers.bounded("bounded_noecon", LEDGER_ONLY, src=args.bounded_src),
                model=FEATURE,
                api_key=ADMIN_KEY,
            )
        )
    if args.compare_src is not None:  # A/B: another copy of bounded, e.g. with a change
        endpoints.append(
            Endpoint(
                "bounded_b",
                "bounded_b",
                launchers.bounded(
                    "bounded_b", _merge(ECONOMICS, args.compare_config), src=args.compare_src
                ),
                **econ,
            )
        )
    if args.validation:
        endpoints.append(
            Endpoint(
                "bounded_validated",
                "bounded, validated",
                launchers.bounded("bounded_validated", VALIDATED, src=args.bounded_src),
                **econ,
            )
        )
    if args.telemetry:
        endpoints.append(
            Endpoint(
                "bounded_notelemetry",
                "bounded, telemetry off",
                launchers.bounded("bounded_notelemetry", NO_TELEMETRY, src=args.bounded_src),
                **econ,
            )
        )
    if not args.skip_litellm:
        endpoints.append(
            Endpoint(
                "litellm",
                "LiteLLM proxy",
                launchers.litellm,
                api_key=LITELLM_KEY,
                health_path="/health/liveliness",
            )
        )
    return endpoints


# -- main ------------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, procs: Processes, workdir: Path, litellm_version: str | None
) -> dict[str, Any]:
    launchers = Launchers(procs)
    endpoints = build_endpoints(launchers, args)
    direct = endpoints[0]

    log(">> starting the stand-in upstream")
    spawned = time.perf_counter()
    standin = launchers.standin(workdir)
    await start(direct, standin, spawned, args.start_timeout)
    direct.rss_start_mb = tree_rss_mb(direct.pid)

    # Servers start one at a time, so one's start-up does not slow another's.
    for ep in endpoints[1:]:
        assert ep.launch is not None
        for attempt in range(args.startup_repeats):
            last = attempt == args.startup_repeats - 1
            log(
                f">> starting {ep.label}"
                + ("" if args.startup_repeats == 1 else f" ({attempt + 1}/{args.startup_repeats})")
            )
            spawned = time.perf_counter()
            launched = ep.launch(workdir, direct.port)
            await start(ep, launched, spawned, args.start_timeout)
            log(f"   ready in {ep.startup_s[-1]:.2f}s (health {ep.health_s[-1]:.2f}s)")
            if not last:
                procs.stop(launched.proc)
    await asyncio.sleep(1.0)  # let start-up work (lazy imports, background tasks) settle
    for ep in endpoints:
        ep.rss_start_mb = tree_rss_mb(ep.pid)
    for ep in endpoints:
        if ep.expect_headers:
            await check_headers(ep)
            log(f"   {ep.name}: {ep.headers_seen}")

    errors = Errors()
    log(f">> sequential: {args.warmup} warm-up + {args.requests} measured per endpoint")
    seq = await sequential(endpoints, args.warmup, args.requests, stream=False, errors=errors)
    log(f">> streaming: {args.stream_requests // 4} warm-up + {args.stream_requests} measured")
    stream = await sequential(
        endpoints, args.stream_requests // 4, args.stream_requests, stream=True, errors=errors
    )
    log(
        f">> load: {args.concurrency} concurrent, {args.duration}s per endpoint "
        f"in {args.block}s blocks"
    )
    tput = await throughput(endpoints, args.concurrency, args.duration, args.block, errors)
    for ep in endpoints:
        ep.rss_after_mb = max(ep.peak_rss_mb, tree_rss_mb(ep.pid))
    await asyncio.sleep(0.2)  # the last group commits are in; read the ledgers back
    for ep in endpoints:
        read_ledger(ep, errors)
    return summarize(endpoints, seq, stream, tput, errors, args, litellm_version) | {
        "_endpoints": endpoints,
        "_errors": errors,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Added latency, throughput, RSS and start-up: direct vs bounded vs LiteLLM."
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="measured sequential requests per endpoint (default 2000)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up requests per endpoint (default: same as --requests)",
    )
    parser.add_argument(
        "--stream-requests",
        type=int,
        default=None,
        help="measured streamed requests per endpoint (default: requests/4)",
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds of load per endpoint (default 5)"
    )
    parser.add_argument(
        "--block",
        type=float,
        default=1.0,
        help="length of one alternating load block in seconds (default 1)",
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--startup-repeats",
        type=int,
        default=1,
        help="start each gateway this many times; the median is reported",
    )
    parser.add_argument("--start-timeout", type=float, default=120.0)
    parser.add_argument("--skip-litellm", action="store_true", help="only direct and bounded")
    parser.add_argument(
        "--skip-noecon",
        action="store_true",
        help="leave out bounded_noecon (bounded with the ledger only, no budget or rate "
        "limit), and so the economics_* figures",
    )
    parser.add_argument(
        "--bounded-src",
        type=Path,
        default=None,
        help="run bounded from this folder (one holding the bounded package, e.g. a scratch "
        "copy's src/) instead of the installed one",
    )
    parser.add_argument(
        "--compare-src",
        type=Path,
        default=None,
        help="also run a second bounded (bounded_b) from this folder, interleaved with the "
        "first, and print bounded_b/bounded ratios (A/B of a change)",
    )
    parser.add_argument(
        "--compare-config",
        type=yaml.safe_load,
        default={},
        help="YAML merged into bounded_b's config only, e.g. '{telemetry: {enabled: false}}' "
        "to compare a newer copy, without what an older one lacks, against that older one",
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help="also run bounded_validated: the feature as a high-risk one (input and output "
        "guards on), and print bounded_validated/bounded ratios",
    )
    parser.add_argument(
        "--telemetry",
        action="store_true",
        help="also run bounded_notelemetry (telemetry.enabled: false) and print the "
        "telemetry_* figures: what traces (stored) and metrics add",
    )
    parser.add_argument(
        "--prompt-bytes",
        type=int,
        default=0,
        help="pad the prompt with benign prose to this many bytes (e.g. 1024)",
    )
    parser.add_argument(
        "--system-bytes",
        type=int,
        default=0,
        help="put a fixed system prompt of this many bytes before the user's message",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the servers' configs and logs (path printed on stderr)",
    )
    args = parser.parse_args(argv)
    harness_endpoints.PROMPT_BYTES = args.prompt_bytes
    harness_endpoints.SYSTEM_BYTES = args.system_bytes
    if args.warmup is None:
        args.warmup = args.requests
    if args.stream_requests is None:
        args.stream_requests = max(50, args.requests // 4)
    if args.requests < 1 or args.startup_repeats < 1 or args.concurrency < 1:
        parser.error("--requests, --startup-repeats and --concurrency must be positive")
    return args


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


async def _run_until_signal(
    args: argparse.Namespace, procs: Processes, workdir: Path, litellm_version: str | None
) -> dict[str, Any]:
    """``run``, cancelled by SIGINT/SIGTERM/SIGHUP. The handlers are the loop's own: a
    signal handler that raises would land inside some transport callback and be lost."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await run(args, procs, workdir, litellm_version)
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="bounded-bench-"))
    try:
        # Before any server starts: a long first install is interrupted like any command.
        litellm_version = None if args.skip_litellm else ensure_litellm()
        try:
            import uvloop
        except ImportError:
            out = asyncio.run(_run_until_signal(args, procs, workdir, litellm_version))
        else:
            out = uvloop.run(_run_until_signal(args, procs, workdir, litellm_version))
    except (KeyboardInterrupt, Interrupted) as exc:
        log(f"interrupted ({exc or 'SIGINT'}); stopping servers")
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
    endpoints, errors = out.pop("_endpoints"), out.pop("_errors")
    report(endpoints, out, errors)
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
