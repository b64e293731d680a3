"""The upstream HTTP client alone: bounded's transport against aiohttp (and pyreqwest).

    .venv/bin/python bench/upstream_client.py [--standin nginx|python] [--seconds 4]
                                              [--concurrency 64] [--rounds 3]

Why: the gateway calls its upstream once per request, so the client's CPU per call is paid
by every request. Each client runs in a fresh process on uvloop, ``--concurrency`` tasks
POSTing a chat body to one stand-in upstream (nginx answering from memory when installed,
else ``bench/standin_upstream.py``) for ``--seconds``; the order rotates each round. CPU is
the client process's own (every thread: pyreqwest's Tokio thread too) and its event loop
thread's, per completed call. pyreqwest is measured when it is importable (it is not a
dependency: ``pip install pyreqwest``). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness_native import nginx_standin
from harness_procs import HOST, Processes, free_port, log

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps(
    {
        "model": "stub-model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the gateway benchmark in one line. " * 3},
        ],
        "max_tokens": 64,
    }
).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer x"}


async def _client(kind: str, base: str):  # type: ignore[no-untyped-def]
    """(one call, close) for ``kind``: configured as bounded configures it."""
    if kind == "bounded":
        from bounded.providers.transport import Upstream

        upstream = Upstream(base, max_connections=256, headers=HEADERS)

        async def one() -> int:
            async with await upstream.post("/chat/completions", BODY, timeout_s=30) as resp:
                await resp.read()
                return resp.status

        return one, upstream.aclose
    if kind == "aiohttp":  # as bounded's providers used it before the transport
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30, ttl_dns_cache=300)
        )
        timeout = aiohttp.ClientTimeout(total=30)

        async def one() -> int:
            resp = await session.post(
                base + "/chat/completions", data=BODY, headers=HEADERS, timeout=timeout
            )
            async with resp:
                await resp.read()
                return resp.status

        return one, session.close
    if kind == "pyreqwest":
        from pyreqwest.client import ClientBuilder

        client = ClientBuilder().build()

        async def one() -> int:
            request = client.post(base + "/chat/completions").headers(HEADERS).body_bytes(BODY)
            resp = await request.build().send()
            await resp.bytes()
            return resp.status

        return one, client.close
    raise ValueError(kind)


async def _measure(kind: str, base: str, seconds: float, concurrency: int) -> dict[str, float]:
    one, close = await _client(kind, base)
    for _ in range(200):  # warm: connections open, code paths hot
        assert await one() == 200
    done = 0
    stop = False

    async def worker() -> None:
        nonlocal done
        while not stop:
            if await one() != 200:
                raise RuntimeError(f"{kind}: a call failed")
            done += 1

    tasks = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    await asyncio.sleep(0.5)
    done = 0
    cpu0, loop0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, loop1, t1, calls = time.process_time(), time.thread_time(), time.perf_counter(), done
    stop = True
    await asyncio.gather(*tasks)
    await close()
    return {
        "calls_per_s": calls / (t1 - t0),
        "cpu_us_per_call": 1e6 * (cpu1 - cpu0) / calls,
        "loop_cpu_us_per_call": 1e6 * (loop1 - loop0) / calls,
    }


def _child(kind: str, base: str, seconds: float, concurrency: int) -> dict[str, float]:
    """One measurement in a fresh process (so no client warms another's caches)."""
    code = (
        "import asyncio, json, sys, uvloop; sys.path.insert(0, sys.argv[1]); "
        "import upstream_client as u; "
        "print(json.dumps(uvloop.run(u._measure(sys.argv[2], sys.argv[3], "
        "float(sys.argv[4]), int(sys.argv[5])))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), kind, base, str(seconds),
         str(concurrency)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _available(kind: str) -> bool:
    try:
        __import__({"bounded": "bounded", "aiohttp": "aiohttp", "pyreqwest": "pyreqwest"}[kind])
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--standin", choices=["nginx", "python"], default="nginx")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    kinds = [k for k in ("bounded", "aiohttp", "pyreqwest") if _available(k)]
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="bench-upstream-"))
    try:
        if args.standin == "nginx":
            port = nginx_standin(procs, workdir).port
        else:
            port = free_port()
            procs.spawn(
                [sys.executable, str(ROOT / "bench" / "standin_upstream.py"), "--port", str(port)],
                log_path=workdir / "standin.log",
            )
        time.sleep(1.0)
        base = f"http://{HOST}:{port}/v1"
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                runs[kind].append(_child(kind, base, args.seconds, args.concurrency))
                log(f"   round {r + 1} {kind}: {runs[kind][-1]}")
    finally:
        procs.stop_all()
    medians = {
        kind: {key: statistics.median(run[key] for run in rs) for key in rs[0]}
        for kind, rs in runs.items()
    }
    load = os.getloadavg()[0]
    print(
        f"one upstream client, {args.concurrency} concurrent calls to {args.standin}, "
        f"median of {args.rounds} rounds (load average {load:.1f}):"
    )
    print(
        f"  {'client':10} {'calls/s':>9} {'CPU µs/call':>12} {'on the loop':>12}"
        f" {'CPU vs bounded':>15}"
    )
    base_cpu = medians["bounded"]["cpu_us_per_call"]
    for kind, m in medians.items():
        print(
            f"  {kind:10} {m['calls_per_s']:9,.0f} {m['cpu_us_per_call']:12.1f} "
            f"{m['loop_cpu_us_per_call']:12.1f} {m['cpu_us_per_call'] / base_cpu:14.2f}x"
        )
    print(json.dumps({"medians": medians, "load_average": load, "settings": vars(args)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
