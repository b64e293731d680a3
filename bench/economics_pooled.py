"""Economics on against off, pooled over several servers of each: the requests/s ratio that one
pair of servers cannot settle on a noisy machine.

    .venv/bin/python bench/economics_pooled.py [--servers K] [--duration S] [--compare-src DIR]
                                               [--system-bytes N]

Why: on the shared 2-core VM two servers started from the same code and config differ by up
to 17% in requests/s, the same way in nearly every block of a run (2026-12-07: 4,577 against
3,903 req/s, the first ahead in seven of eight blocks). So ``gateway_overhead.py``'s
``economics_rps_ratio``, one server each, lands anywhere within about ±0.07 of the true
ratio. Here K servers run each configuration (``bounded`` with the ledger, a hard budget and
a rate limit; ``noecon`` with the ledger only: the features of ``gateway_overhead.py``), all
interleaved in 1 s blocks at 64 concurrent keep-alive clients, and the ratio is the pooled
requests/s of the one over the other. ``--compare-src DIR`` adds K of each from another copy
of bounded (e.g. ``git archive HEAD~1 src | tar -x -C /tmp/before``) in the same run: the
A/B of a change to economics.

It prints every server's requests/s, the pooled ratio per source and the spread between the
servers of one configuration; the last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness_endpoints
from harness_client import Errors, start
from harness_endpoints import ADMIN_KEY, ECONOMICS, FEATURE, LEDGER_ONLY, Endpoint, Launchers
from harness_load import throughput
from harness_procs import Processes, log

CONFIGS = {"econ": ECONOMICS, "noecon": LEDGER_ONLY}


def endpoints(
    launchers: Launchers, sources: dict[str, Path | None], servers: int
) -> list[Endpoint]:
    out = []
    for i in range(servers):
        for source, src in sources.items():
            for config, extra in CONFIGS.items():
                name = f"{source}_{config}{i}"
                out.append(
                    Endpoint(
                        name,
                        name,
                        launchers.bounded(name, extra, src=src),
                        model=FEATURE,
                        api_key=ADMIN_KEY,
                    )
                )
    return out


async def run(args: argparse.Namespace, procs: Processes, workdir: Path) -> dict[str, Any]:
    sources: dict[str, Path | None] = {"bounded": None}
    if args.compare_src is not None:
        sources["compare"] = args.compare_src
    launchers = Launchers(procs)
    direct = Endpoint("direct", "direct", None, health_path="/health")
    await start(direct, launchers.standin(workdir), time.perf_counter(), args.start_timeout)
    servers = endpoints(launchers, sources, args.servers)
    for ep in servers:  # one at a time, so one's start-up does not slow another's
        log(f">> starting {ep.name}")
        assert ep.launch is not None
        await start(ep, ep.launch(workdir, direct.port), time.perf_counter(), args.start_timeout)
    await asyncio.sleep(1.0)
    errors = Errors()
    log(f">> load: {args.concurrency} concurrent, {args.duration}s per server in 1s blocks")
    result = await throughput(servers, args.concurrency, args.duration, 1.0, errors)
    out: dict[str, Any] = {"loadavg_1m_after": round(os.getloadavg()[0], 2)}
    for source in sources:
        rps = {
            config: [result.rps(f"{source}_{config}{i}") for i in range(args.servers)]
            for config in CONFIGS
        }
        ratio = sum(rps["econ"]) / sum(rps["noecon"])
        out[f"{source}_econ_rps"] = [round(x) for x in rps["econ"]]
        out[f"{source}_noecon_rps"] = [round(x) for x in rps["noecon"]]
        out[f"{source}_economics_rps_ratio"] = round(ratio, 3)
        for config, values in rps.items():
            out[f"{source}_{config}_spread"] = round(max(values) / min(values), 3)
    out["errors"] = sum(errors.count(ep.name) for ep in servers)
    return out


def report(out: dict[str, Any], sources: list[str]) -> None:
    for source in sources:
        print(
            f"{source}: economics {out[f'{source}_econ_rps']} req/s, ledger only "
            f"{out[f'{source}_noecon_rps']} req/s; pooled economics / ledger only "
            f"{out[f'{source}_economics_rps_ratio']:.3f}x (servers of one configuration "
            f"differ by up to {out[f'{source}_econ_spread']:.3f}x and "
            f"{out[f'{source}_noecon_spread']:.3f}x)"
        )
    print(f"load average after: {out['loadavg_1m_after']}; failed requests: {out['errors']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=2, help="servers per configuration")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per server")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--compare-src", type=Path, default=None)
    parser.add_argument("--start-timeout", type=float, default=120.0)
    parser.add_argument(
        "--system-bytes",
        type=int,
        default=0,
        help="put a fixed system prompt of this many bytes before the user's message",
    )
    args = parser.parse_args()
    harness_endpoints.SYSTEM_BYTES = args.system_bytes
    if args.servers < 1 or args.duration <= 0:
        parser.error("--servers and --duration must be positive")
    load_before = round(os.getloadavg()[0], 2)
    procs = Processes()
    try:
        import uvloop  # the load client's own CPU: uvloop's is the cheaper loop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    with tempfile.TemporaryDirectory(prefix="bench-econ-pooled-") as workdir:
        try:
            out = runner(run(args, procs, Path(workdir)))
        finally:
            procs.stop_all()  # before their stores go with the folder
    out["loadavg_1m_before"] = load_before
    out["settings"] = {
        "servers": args.servers,
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "compare_src": str(args.compare_src) if args.compare_src else None,
        "system_bytes": args.system_bytes,
    }
    sources = ["bounded"] + (["compare"] if args.compare_src else [])
    print(f"load average before: {load_before}")
    report(out, sources)
    print(json.dumps(out, separators=(",", ":")))
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
