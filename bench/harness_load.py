"""The measurements: sequential round-robin requests (latency, streaming time to first
byte) and alternating blocks of concurrent load (requests/s, latency, the CPU of the
server, the client and the stand-in, the machine's idle time).
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness_client import Client, Errors, check_reply
from harness_endpoints import Endpoint
from harness_procs import tree_cpu_s, tree_rss_mb


def rotated(items: Sequence[Endpoint], k: int) -> list[Endpoint]:
    k %= len(items)
    return [*items[k:], *items[:k]]


@dataclass
class Sequential:
    total_ms: dict[str, list[float]] = field(default_factory=dict)
    ttfb_ms: dict[str, list[float]] = field(default_factory=dict)


async def sequential(
    endpoints: list[Endpoint], warmup: int, n: int, *, stream: bool, errors: Errors
) -> Sequential:
    """Round-robin one request per endpoint, rotating the order each round."""
    result = Sequential({ep.name: [] for ep in endpoints}, {ep.name: [] for ep in endpoints})
    clients = {ep.name: Client(ep.port) for ep in endpoints}
    raws = {ep.name: ep.request_bytes(stream=stream) for ep in endpoints}
    try:
        for measured, count in ((False, warmup), (True, n)):
            gc.collect()
            gc.disable()
            try:
                for i in range(count):
                    for ep in rotated(endpoints, i):
                        try:
                            status, t0, t_first, t_done, body = await clients[ep.name].call(
                                raws[ep.name], sse=stream
                            )
                        except (OSError, TimeoutError) as exc:
                            errors.add(ep.name, f"{type(exc).__name__}: {exc}")
                            continue
                        problem = check_reply(status, body, stream=stream)
                        if problem is not None:
                            errors.add(ep.name, problem)
                            continue
                        if measured:
                            result.total_ms[ep.name].append((t_done - t0) / 1e6)
                            if stream:
                                first = t_first or t_done
                                result.ttfb_ms[ep.name].append((first - t0) / 1e6)
            finally:
                gc.enable()
    finally:
        for client in clients.values():
            client.close()
    return result


@dataclass
class Throughput:
    ok: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    # what the load client (this process, or wrk) and the stand-in spent meanwhile
    client_cpu_s: dict[str, float] = field(default_factory=dict)
    standin_cpu_s: dict[str, float] = field(default_factory=dict)
    idle_s: dict[str, float] = field(default_factory=dict)  # the machine's, all cores
    latency_ms: dict[str, list[float]] = field(default_factory=dict)

    def rps(self, name: str) -> float:
        seconds = self.seconds.get(name, 0.0)
        return self.ok[name] / seconds if seconds else 0.0


async def _block(
    clients: list[Client],
    raw: bytes,
    seconds: float,
    errors: Errors,
    name: str,
    latencies: list[float] | None,
) -> tuple[int, float]:
    """All clients loop, starting new requests for ``seconds``; the requests still in flight
    then are waited for and counted too. Returns (completed, seconds from the start to the
    last completion): so no work the server did is thrown away at the block's edges, which
    matters for a slow server whose 64 in-flight requests are a large part of a block."""
    start_ns = time.perf_counter_ns()
    end_ns = start_ns + int(seconds * 1e9)
    last_ns = start_ns

    async def worker(client: Client) -> int:
        nonlocal last_ns
        done = 0
        while time.perf_counter_ns() < end_ns:
            try:
                status, t0, _, t_done, body = await client.call(raw)
            except (OSError, TimeoutError) as exc:
                errors.add(name, f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.05)
                continue
            if status != 200 or b'"choices"' not in body:
                errors.add(name, f"HTTP {status}: {body[:160].decode('utf-8', 'replace')}")
                continue
            done += 1
            last_ns = max(last_ns, t_done)
            if latencies is not None:
                latencies.append((t_done - t0) / 1e6)
        return done

    counts = await asyncio.gather(*(worker(c) for c in clients))
    return sum(counts), (last_ns - start_ns) / 1e9


async def settle(
    pid: int, *, quiet_cores: float = 0.1, window_s: float = 0.2, max_s: float = 15.0
) -> float:
    """Wait until a server's process tree is nearly idle (under ``quiet_cores`` over a
    ``window_s`` window) or ``max_s`` has passed; returns the seconds waited. After a block a
    slow server may still be working off requests the client left in flight, or a trace
    writer its backlog: without this, that work lands in the next endpoint's block (LiteLLM
    at 256 concurrent needs about 1.5 s to drain)."""
    start = time.perf_counter()
    last = tree_cpu_s(pid)
    while time.perf_counter() - start < max_s:
        await asyncio.sleep(window_s)
        now = tree_cpu_s(pid)
        if now - last < quiet_cores * window_s + 1e-9:
            break
        last = now
    return time.perf_counter() - start


def machine_idle_s() -> float:
    """Seconds all cores together spent idle (or waiting on I/O), from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0.0
    return (int(fields[4]) + int(fields[5])) / _USER_HZ


_USER_HZ = os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds of this process's children that have exited and been waited for: a wrk
    run, once its block is over (the servers are waited for only at the end)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds of one block: the server's process tree, the stand-in's (``standin_pid``;
    0 when there is none apart from the server) and the load client's (``client_clock``:
    this process's own CPU time by default)."""

    def __init__(
        self,
        server_pid: int,
        standin_pid: int,
        client_clock: Callable[[], float] = time.process_time,
    ):
        self.server_pid, self.standin_pid, self.client_clock = server_pid, standin_pid, client_clock
        self.start = self.read()

    def read(self) -> tuple[float, float, float, float]:
        standin = self.standin_pid if self.standin_pid != self.server_pid else 0
        return (
            tree_cpu_s(self.server_pid),
            tree_cpu_s(standin) if standin else 0.0,
            self.client_clock(),
            machine_idle_s(),
        )

    def add_to(self, result: Throughput, name: str, end: tuple[float, float, float, float]) -> None:
        server, standin, client, idle = (b - a for a, b in zip(self.start, end, strict=True))
        for table, value in (
            (result.cpu_s, server),
            (result.standin_cpu_s, standin),
            (result.client_cpu_s, client),
            (result.idle_s, idle),
        ):
            table[name] = table.get(name, 0.0) + value


async def throughput(
    endpoints: list[Endpoint],
    concurrency: int,
    duration: float,
    block: float,
    errors: Errors,
    standin_pid: int = 0,
) -> Throughput:
    """Alternating blocks: each endpoint alone for ``block`` seconds, order rotating,
    until each has had ``duration`` seconds. Connections stay open across blocks."""
    result = Throughput(latency_ms={ep.name: [] for ep in endpoints})
    pools = {ep.name: [Client(ep.port) for _ in range(concurrency)] for ep in endpoints}
    raws = {ep.name: ep.request_bytes(stream=False) for ep in endpoints}
    rounds = max(1, math.ceil(duration / block - 1e-9))
    try:
        for ep in endpoints:  # warm-up: open the connections, warm the servers' pools
            await _block(pools[ep.name], raws[ep.name], min(1.0, block), errors, ep.name, None)
        gc.collect()
        gc.disable()
        for r in range(rounds):
            for ep in rotated(endpoints, r):
                meter = CpuMeter(ep.pid, standin_pid)
                ok, elapsed = await _block(
                    pools[ep.name],
                    raws[ep.name],
                    block,
                    errors,
                    ep.name,
                    result.latency_ms[ep.name],
                )
                meter.add_to(result, ep.name, meter.read())
                result.ok[ep.name] += ok
                result.seconds[ep.name] = result.seconds.get(ep.name, 0.0) + elapsed
                ep.peak_rss_mb = max(ep.peak_rss_mb, tree_rss_mb(ep.pid))
                await settle(ep.pid)
    finally:
        gc.enable()
        for pool in pools.values():
            for client in pool:
                client.close()
    return result
