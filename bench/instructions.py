"""Instructions per request: what economics (and telemetry) cost the gateway, counted by
valgrind's callgrind rather than timed, so the figure holds on a busy machine.

    .venv/bin/python bench/instructions.py [--requests N] [--concurrency C] [--telemetry]
                                           [--src DIR] [--keep DIR]

Why: on a shared 2-core VM requests/s moves by 5-10% between identical runs, more than
the change one usually wants to see. Instructions executed by the server moved about
0.5% between identical runs on earlier VMs, up to 2.5% on 2026-12-07's (the WAL
checkpointer's thread wakes once a second of wall time, a few hundred requests under
valgrind, and commit batches vary): compare changes larger than that. For each
configuration (the ledger only, then ledger + budget + rate limit: the same features as
``bench/gateway_overhead.py``), a single
``bounded serve`` runs under callgrind with instrumentation off; after ``--warmup``
requests it is switched on (``callgrind_control -i on``), ``--requests`` requests are sent
from ``--concurrency`` keep-alive connections, and the counts are dumped. Every thread of
the server process is counted (the trace writer too); child processes are not.

What it cannot see: cache misses, lock and GIL contention, and time spent waiting, so it
complements ``gateway_overhead.py``'s req/s; it does not replace it. On this machine the
instruction ratio has matched the measured req/s ratio to within the run-to-run noise.

The last line of stdout is one JSON object with every figure. Needs ``valgrind``
(``apt-get install -y valgrind``); a run takes about a minute per configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness_client import Client, Errors, start
from harness_endpoints import (
    ADMIN_KEY,
    ECONOMICS,
    FEATURE,
    LEDGER_ONLY,
    Endpoint,
    Launchers,
    _merge,
)
from harness_procs import Processes, log

NO_TELEMETRY = {"telemetry": {"enabled": False}}


async def _load(port: int, raw: bytes, requests: int, concurrency: int, errors: Errors) -> None:
    """Exactly ``requests`` requests over ``concurrency`` connections."""
    left = requests
    clients = [Client(port) for _ in range(concurrency)]

    async def worker(client: Client) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, _, _, _, body = await client.call(raw, timeout=300)
            if status != 200:
                errors.add("bounded", f"HTTP {status}: {body[:160]!r}")

    try:
        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for client in clients:
            client.close()


def _total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary line in {dump}")


async def count(name: str, config: dict[str, Any], args: argparse.Namespace) -> float:
    """Instructions per request of one configuration."""
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-instr-{name}-"))
    out = workdir / "callgrind.out"
    spawn = procs.spawn

    def under_callgrind(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        if "bounded" in argv:  # the gateway, not the stand-in
            argv = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}.%p",
                *argv,
            ]
        return spawn(argv, **kwargs)

    procs.spawn = under_callgrind  # type: ignore[method-assign]
    launchers = Launchers(procs)
    try:
        standin = launchers.standin(workdir)
        endpoint = Endpoint(
            name,
            name,
            launchers.bounded(name, config, src=args.src),
            model=FEATURE,
            api_key=ADMIN_KEY,
        )
        assert endpoint.launch is not None
        spawned = time.perf_counter()
        await start(endpoint, endpoint.launch(workdir, standin.port), spawned, 300)
        raw = endpoint.request_bytes(stream=False)
        errors = Errors()
        await _load(endpoint.port, raw, args.warmup, args.concurrency, errors)
        pid = str(endpoint.pid)
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        await _load(endpoint.port, raw, args.requests, args.concurrency, errors)
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
        if errors.count(name):
            raise RuntimeError(f"{name}: {errors.count(name)} requests failed")
        # The explicit dump is part 1; the one written at exit holds nothing measured.
        dump = Path(f"{out}.{pid}.1")
        per_request = _total(dump) / args.requests
        if args.keep is not None:  # for callgrind_annotate: where the instructions went
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(dump, args.keep / f"callgrind.{name}.out")
        log(f"{name}: {per_request / 1e3:,.0f}k instructions per request")
        return per_request
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="counted, per config")
    parser.add_argument("--warmup", type=int, default=300, help="before counting starts")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--telemetry", action="store_true", help="traces and metrics on")
    parser.add_argument("--src", type=Path, default=None, help="run bounded from DIR")
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy each config's callgrind dump into DIR"
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    extra = {} if args.telemetry else NO_TELEMETRY
    ledger_only = await count("ledger_only", _merge(LEDGER_ONLY, extra), args)
    economics = await count("economics", _merge(ECONOMICS, extra), args)
    return {
        "ledger_only_instructions_per_request": round(ledger_only),
        "economics_instructions_per_request": round(economics),
        "economics_added_instructions_per_request": round(economics - ledger_only),
        # What the instruction counts predict for economics on against off in req/s.
        "economics_instruction_ratio": round(ledger_only / economics, 3),
        "settings": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "telemetry": args.telemetry,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed: apt-get install -y valgrind", file=sys.stderr)
        return 2
    out = asyncio.run(run(args))
    telemetry = "on" if args.telemetry else "off"
    print(
        f"instructions per request (callgrind), telemetry {telemetry}, "
        f"{args.requests} requests from {args.concurrency} connections:"
    )
    print(f"  ledger only                      {out['ledger_only_instructions_per_request']:>10,}")
    print(f"  ledger + budget + rate limit     {out['economics_instructions_per_request']:>10,}")
    print(
        f"  economics added                  "
        f"{out['economics_added_instructions_per_request']:>+10,}"
    )
    print(
        f"  ledger only / economics          {out['economics_instruction_ratio']:>10.3f}x"
        "  (the req/s ratio these counts predict)"
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
