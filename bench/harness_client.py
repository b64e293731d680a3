"""The load client: a raw asyncio + httptools HTTP/1.1 keep-alive connection with pre-built
request bytes, a reconnecting ``Client``, reply and header checks, the error tally, the
ledger read-back, and the start-up wait (health endpoint, then the first 200).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import httptools
import orjson

from harness_endpoints import Endpoint, Launched
from harness_procs import HOST, tail

EXPECTED_CONTENT = "The capital of France is Paris."  # what the stand-in answers


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 client connection: pre-built request bytes in, status,
    timestamps and body out. Timestamps are taken in the protocol callbacks, i.e. when the
    bytes arrive, not when the awaiting coroutine is resumed."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.body: list[bytes] = []
        self.first_data_ns = 0
        self.done_ns = 0
        self.watch_sse = False
        self.reusable = True

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, HOST, port)
        sock = proto.transport.get_extra_info("socket") if proto.transport else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)
            self.close()

    def on_body(self, body: bytes) -> None:
        if self.watch_sse and not self.first_data_ns and b"data:" in body:
            self.first_data_ns = time.perf_counter_ns()
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done_ns = time.perf_counter_ns()
        self.status = self.parser.get_status_code()
        if not self.parser.should_keep_alive():
            self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def request(self, raw: bytes, *, sse: bool = False, timeout: float = 30.0) -> int:
        """Send one request, wait for the whole response; returns the start time (ns)."""
        if self.transport is None:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.body = []
        self.status = 0
        self.first_data_ns = 0
        self.watch_sse = sse
        started = time.perf_counter_ns()
        self.transport.write(raw)
        async with asyncio.timeout(timeout):
            await self.waiter
        return started

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class HeaderConnection(HttpConnection):
    """An ``HttpConnection`` that also keeps the response headers (for checks only: the
    measuring connections do not pay for a header callback)."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: dict[str, str] = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")


async def check_headers(ep: Endpoint) -> None:
    """One request; it must be a correct 200 carrying every header in ``expect_headers``."""
    conn = await HeaderConnection.open(ep.port)
    try:
        await conn.request(ep.request_bytes(stream=False), timeout=10)
    finally:
        conn.close()
    problem = check_reply(conn.status, b"".join(conn.body), stream=False)
    if problem is not None:
        raise RuntimeError(f"{ep.name}: {problem}")
    missing = [h for h in ep.expect_headers if h not in conn.headers]
    if missing:
        raise RuntimeError(
            f"{ep.name}: response lacks {', '.join(missing)} (got {sorted(conn.headers)})"
        )
    ep.headers_seen = {h: conn.headers[h] for h in ep.expect_headers}


def read_ledger(ep: Endpoint, errors: Errors) -> None:
    """Rows in bounded's ledger and their cost, read back from its SQLite store."""
    if ep.ledger_db is None or not ep.ledger_db.exists():
        return
    import sqlite3

    conn = sqlite3.connect(f"file:{ep.ledger_db}?mode=ro", uri=True, timeout=10)
    try:
        rows, ok, cost_e10, zero = conn.execute(
            "SELECT count(*), coalesce(sum(status = 200), 0), coalesce(sum(cost_e10), 0),"
            " coalesce(sum(status = 200 AND cost_e10 <= 0), 0) FROM ledger"
            " WHERE feature IS NOT 'prefill'"  # harness_prefill's rows: not this run's
        ).fetchone()
    finally:
        conn.close()
    ep.ledger = {"rows": rows, "ok_rows": ok, "cost_usd": cost_e10 / 1e10, "zero_cost": zero}
    if zero:
        errors.add(ep.name, f"{zero} ledger row(s) of 200 responses with zero cost")


class Client:
    """A connection that reopens itself when the server closes it."""

    def __init__(self, port: int):
        self.port = port
        self.conn: HttpConnection | None = None
        self.reconnects = 0

    async def call(
        self, raw: bytes, *, sse: bool = False, timeout: float = 30.0
    ) -> tuple[int, int, int, int, bytes]:
        """(status, start_ns, first_data_ns, done_ns, body)."""
        if self.conn is None or not self.conn.reusable:
            if self.conn is not None:
                self.conn.close()
                self.reconnects += 1
            self.conn = await HttpConnection.open(self.port)
        conn = self.conn
        try:
            started = await conn.request(raw, sse=sse, timeout=timeout)
        except BaseException:
            conn.close()
            self.conn = None
            raise
        return conn.status, started, conn.first_data_ns, conn.done_ns, b"".join(conn.body)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def check_reply(status: int, body: bytes, *, stream: bool) -> str | None:
    """None when the reply is a correct 200, else a short description of what is wrong."""
    if status != 200:
        return f"HTTP {status}: {body[:160].decode('utf-8', 'replace')}"
    if stream:
        text = body.decode("utf-8", "replace")
        if not text.rstrip().endswith("data: [DONE]"):
            return "stream did not end with data: [DONE]"
        content = ""
        for line in text.splitlines():
            if line.startswith("data: {"):
                chunk = orjson.loads(line[6:])
                if "error" in chunk:
                    return f"error event: {line[:160]}"
                for choice in chunk.get("choices") or ():
                    content += (choice.get("delta") or {}).get("content") or ""
        return None if content == EXPECTED_CONTENT else f"stream content {content[:60]!r}"
    try:
        data = orjson.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return f"malformed completion: {body[:160]!r}"
    return None if content == EXPECTED_CONTENT else f"content {content[:60]!r}"


class Errors:
    def __init__(self) -> None:
        self.by_endpoint: dict[str, Counter[str]] = {}

    def add(self, endpoint: str, what: str, times: int = 1) -> None:
        self.by_endpoint.setdefault(endpoint, Counter())[what[:200]] += times

    def count(self, endpoint: str) -> int:
        return sum(self.by_endpoint.get(endpoint, Counter()).values())


# -- start-up --------------------------------------------------------------------------


async def wait_ready(
    ep: Endpoint, proc: subprocess.Popen[bytes], spawned: float, log_path: Path, timeout_s: float
) -> tuple[float, float]:
    """Poll the health endpoint, then the chat endpoint; (health_s, first_ok_s) since spawn."""
    deadline = spawned + timeout_s
    health = ep.get_bytes(ep.health_path)
    chat = ep.request_bytes(stream=False)
    health_s = first_ok_s = 0.0
    last = ""
    refused_since = 0.0  # a server that answers but refuses the request is not starting up
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{ep.name} exited with {proc.returncode}:\n{tail(log_path)}")
        if time.perf_counter() > deadline:
            raise RuntimeError(
                f"{ep.name} not ready after {timeout_s:.0f}s ({last}):\n{tail(log_path)}"
            )
        client = Client(ep.port)
        try:
            if not health_s:
                status, *_ = await client.call(health, timeout=5)
                if status == 200:
                    health_s = time.perf_counter() - spawned
                last = f"health {status}"
            if health_s:
                status, _, _, _, body = await client.call(chat, timeout=10)
                problem = check_reply(status, body, stream=False)
                if problem is None:
                    first_ok_s = time.perf_counter() - spawned
                    return health_s, first_ok_s
                last = problem
                refused_since = refused_since or time.perf_counter()
                if time.perf_counter() - refused_since > 10:
                    raise RuntimeError(
                        f"{ep.name} is up but refuses requests: {problem}\n{tail(log_path)}"
                    )
        except (OSError, TimeoutError) as exc:
            last = f"{type(exc).__name__}"
        finally:
            client.close()
        await asyncio.sleep(0.01)


async def start(ep: Endpoint, launched: Launched, spawned: float, timeout_s: float) -> None:
    ep.port, ep.pid, ep.log_path = launched.port, launched.proc.pid, launched.log_path
    ep.ledger_db = launched.db_path
    health_s, ok_s = await wait_ready(ep, launched.proc, spawned, launched.log_path, timeout_s)
    ep.health_s.append(health_s)
    ep.startup_s.append(ok_s)
