"""Native peers for the load measurements: wrk as the load client and nginx as the stand-in
upstream, both C programs from Debian's packages (``apt-get install -y wrk nginx-light``).

Why: on a machine with few cores, the Python load client and the Python stand-in take a
share of the same cores as the servers measured (``bench/workers.py`` prints how much).
That share caps what a second worker can add. wrk and nginx do the same jobs for a
fraction of the CPU per request, so the cores go to the servers being compared.

* ``Nginx``: a stand-in answering every request with the same chat.completion JSON as
  ``bench/standin_upstream.py`` (non-streaming only), on one nginx worker process.
* ``wrk_block``: one wrk run of ``seconds`` against an endpoint with ``connections`` kept-open
  connections on one thread; returns the completed count, the elapsed seconds, the error
  counts and the latency distribution as 1,000 quantiles (wrk's own histogram). The request
  is the endpoint's pre-built one (method, headers and body through wrk's Lua table, so wrk
  stays in C for every request). wrk does not read bodies, so the body checks stay with the
  Python client: before the load and in the ledger read-back after it.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness_client import Errors
from harness_endpoints import Endpoint, Launched
from harness_load import CpuMeter, Throughput, children_cpu_s, rotated, settle
from harness_procs import HOST, Processes, free_port, tree_rss_mb

QUANTILES = 1000  # per block; the blocks' quantiles together stand for the distribution


def need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise RuntimeError(f"{program} not found: install it with `apt-get install -y {package}`")
    return path


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal that holds ``text`` verbatim."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def wrk_script(ep: Endpoint) -> str:
    """The Lua for one endpoint: its request, and a ``done`` that prints the summary and
    the latency quantiles on lines the parser below reads."""
    raw = ep.request_bytes(stream=False).decode()
    head, body = raw.split("\r\n\r\n", 1)
    lines = head.split("\r\n")[1:]
    headers = [line.split(": ", 1) for line in lines if not line.lower().startswith("host:")]
    out = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    # content-length is wrk's to set (it does from the body); the rest as the client sends.
    for name, value in headers:
        if name.lower() != "content-length":
            out.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    out.append(
        f"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK-SUMMARY %d %d %d %d %d %d %d\\n", summary.duration,
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
  for i = 1, {QUANTILES} do
    io.write(string.format("WRK-Q %d\\n", latency:percentile(i * 100 / {QUANTILES})))
  end
end
"""
    )
    return "\n".join(out)


@dataclass
class WrkBlock:
    ok: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    quantiles_ms: list[float] = field(default_factory=list)


def parse_wrk(stdout: str) -> WrkBlock:
    block = WrkBlock()
    summary: list[int] | None = None
    for line in stdout.splitlines():
        if line.startswith("WRK-SUMMARY "):
            summary = [int(x) for x in line.split()[1:]]
        elif line.startswith("WRK-Q "):
            block.quantiles_ms.append(int(line.split()[1]) / 1000)
    if summary is None:
        raise RuntimeError(f"wrk printed no summary:\n{stdout[-2000:]}")
    duration_us, requests, connect, read, write, status, timeout = summary
    block.seconds = duration_us / 1e6
    block.ok = requests - status  # wrk counts a non-2xx/3xx reply as a request and an error
    named = {"connect": connect, "read": read, "write": write, "HTTP status": status}
    block.errors = {k: v for k, v in {**named, "timeout": timeout}.items() if v}
    return block


async def wrk_block(wrk: str, script: Path, port: int, connections: int, seconds: int) -> WrkBlock:
    proc = await asyncio.create_subprocess_exec(
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        f"http://{HOST}:{port}/v1/chat/completions",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    stdout, _ = await proc.communicate()
    text = stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}:\n{text[-2000:]}")
    return parse_wrk(text)


NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server {{
    listen {host}:{port} reuseport;
    location / {{
      default_type application/json;
      return 200 {body};
    }}
  }}
}}
"""


def nginx_standin(procs: Processes, workdir: Path) -> Launched:
    """nginx answering every request (any path, any method) with the stand-in's
    chat.completion; a GET to the health path gets the same 200."""
    from standin_upstream import _completion

    nginx = need("nginx", "nginx-light")
    folder = workdir / "nginx"
    folder.mkdir(exist_ok=True)
    port = free_port()
    body = _completion().decode()
    assert "'" not in body, "the completion JSON would need escaping for nginx"
    conf = NGINX_CONF.format(dir=folder, host=HOST, port=port, body="'" + body + "'")
    path = folder / "nginx.conf"
    path.write_text(conf)
    log_path = workdir / "nginx.log"
    proc = procs.spawn([nginx, "-p", str(folder), "-c", str(path)], log_path=log_path)
    return Launched(proc, port, log_path)


async def throughput_wrk(
    endpoints: list[Endpoint],
    concurrency: int,
    duration: float,
    block: float,
    errors: Errors,
    workdir: Path,
    standin_pid: int = 0,
) -> Throughput:
    """``harness_load.throughput`` with wrk as the client: alternating blocks of ``block``
    seconds (whole seconds: wrk's unit), order rotating, until each endpoint has had
    ``duration`` seconds. Each block is one wrk run with fresh connections. Server CPU is
    read just before wrk starts and just after it exits: the requests wrk leaves in flight
    at the end are paid for in the window as much as the ones already in flight at a steady
    state's start would have been, so CPU per completed request is not biased. After each
    block the server is left to finish those abandoned requests (``settle``, not counted)
    before the next endpoint's block."""
    wrk = need("wrk", "wrk")
    seconds = max(1, round(block))
    result = Throughput(latency_ms={ep.name: [] for ep in endpoints})
    scripts = {}
    for ep in endpoints:
        scripts[ep.name] = workdir / f"wrk-{ep.name}.lua"
        scripts[ep.name].write_text(wrk_script(ep))
    rounds = max(1, math.ceil(duration / seconds - 1e-9))
    for ep in endpoints:  # warm-up: the servers' upstream pools and caches
        await wrk_block(wrk, scripts[ep.name], ep.port, concurrency, 1)
        await settle(ep.pid)
    for r in range(rounds):
        for ep in rotated(endpoints, r):
            meter = CpuMeter(ep.pid, standin_pid, children_cpu_s)
            got = await wrk_block(wrk, scripts[ep.name], ep.port, concurrency, seconds)
            meter.add_to(result, ep.name, meter.read())
            for what, count in got.errors.items():
                errors.add(ep.name, f"wrk: {what} error", count)
            result.ok[ep.name] += got.ok
            result.seconds[ep.name] = result.seconds.get(ep.name, 0.0) + got.seconds
            result.latency_ms[ep.name].extend(got.quantiles_ms)
            ep.peak_rss_mb = max(ep.peak_rss_mb, tree_rss_mb(ep.pid))
            await settle(ep.pid)
    return result
