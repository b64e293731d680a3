"""The providers' HTTP/1.1 client: pooled keep-alive connections, parsed by httptools.

    upstream = Upstream("https://api.openai.com/v1", max_connections=100, headers={...})
    async with await upstream.post("/chat/completions", body, timeout_s=30) as resp:
        raw = await resp.read()                    # or: async for line in resp.lines()

Why not aiohttp, which this replaced on the request path: a POST through aiohttp's
``ClientSession`` cost 102 µs of CPU against a local nginx, all of it on the event loop;
this client costs 23 µs for the same exchange, and pyreqwest (Rust) 62 µs, 25 of them on
the loop and the rest in its Tokio thread (`bench/upstream_client.py`, 64 concurrent
calls). In a loaded gateway aiohttp was 22% of the event loop's samples (py-spy), the
largest single share; this client is 11%, most of it the socket write itself.

What it does not do, because an API upstream needs none of it: redirects, cookies, proxies
(aiohttp was not given the environment's either), HTTP/2, request bodies that are not bytes.

What it does: one pool per provider entry (``max_connections``, reused newest first, idle
ones dropped after ``keepalive_s``), TLS with the system's trust store and the host's
name checked, responses framed by Content-Length, chunked or the connection's end, gzip
and deflate undone, a total deadline or a deadline per read, and backpressure on streams
(reading pauses past 256 KiB unread). A connection goes back to the pool only after its
response was read to the end; a response given up half-read closes it. A request on a
kept-alive connection that the server closes before a byte of its answer (the server's idle
timeout passing as it went out) is sent once more on a new connection; nothing else is
ever sent twice.

Failures raise :class:`UpstreamClosed` (a ``ConnectionError``: refused, reset, closed
before the response ended, a malformed response) or :class:`UpstreamTimeout` (a
``TimeoutError``); the providers turn both into their typed errors.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

from bounded.providers.transport_exchange import (
    Connection,
    Response,
    UpstreamClosed,
    UpstreamTimeout,
)

log = logging.getLogger("bounded.providers")

USER_AGENT = "bounded"
# Idle at least this long, a kept-alive connection may meet the server's idle timeout (no
# server's is shorter: gunicorn's 2 s, uvicorn's and Node's 5, nginx's 75).
IDLE_RACE_S = 1.0


def _check_header(name: str, value: str) -> None:
    # A CR or LF would end the header early and let the rest be read as more headers.
    if any(c in name or c in value for c in "\r\n\0") or not name or ":" in name:
        raise ValueError(f"invalid HTTP header {name!r}: names and values may not hold CR, LF")


def _head(target: str, headers: Mapping[str, str]) -> bytes:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST {target} HTTP/1.1\r\n{lines}".encode()


_tls: ssl.SSLContext | None = None


def default_tls() -> ssl.SSLContext:
    """The system's trust store, host names checked (built once: loading it takes ms)."""
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context()
    return _tls


class Upstream:
    """One base URL's connection pool (create it anywhere; it binds to the first event
    loop that uses it, and starts afresh on another one)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 100,
        keepalive_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"an upstream URL must be http:// or https:// with a host: {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = (tls or default_tls()) if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port is not None and parts.port != (443 if self.tls else 80):
            host = f"{host}:{parts.port}"
        fixed = {"host": host, "user-agent": USER_AGENT, "accept-encoding": "gzip, deflate"}
        fixed.update({k.lower(): v for k, v in (headers or {}).items()})
        for name, value in fixed.items():
            _check_header(name, value)
        self._fixed = fixed
        self._heads: dict[str, bytes] = {}
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self._idle: list[Connection] = []
        self._waiting: deque[asyncio.Future[Connection | None]] = deque()
        self._open = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0  # bumped when the pool starts afresh: older connections don't count
        self.closed = False

    async def post(
        self,
        path: str,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        read_timeout_s: float | None = None,
    ) -> Response:
        """Send ``body`` to base URL + ``path``; returns once the status and headers are in.
        ``timeout_s`` bounds the whole exchange, body included; ``read_timeout_s`` the
        connect and each wait for more bytes (a stream's)."""
        if self.closed:
            # As aiohttp's session was recreated on use: a provider closed while a runtime
            # still routes to it must not fail every call until a restart.
            log.warning("the client for %s was used after it was closed: reopening", self.host)
            self.closed = False
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        wait = timeout_s if read_timeout_s is None else read_timeout_s
        if headers:  # this call's own headers replace the pool's of the same name
            merged = {**self._fixed, **{k.lower(): v for k, v in headers.items()}}
            for name, value in headers.items():
                _check_header(name, value)
            head = _head(self._prefix + path, merged)
        else:
            head = self._heads.get(path) or self._heads.setdefault(
                path, _head(self._prefix + path, self._fixed)
            )
        request = head + b"content-length: %d\r\n\r\n" % len(body) + body
        conn = await self._acquire(loop, wait)
        try:
            return await conn.exchange(request, deadline, read_timeout_s)
        except UpstreamClosed:
            if conn.idle_for < IDLE_RACE_S or conn.heard:
                raise
        # A connection idle a while, closed under this request before any byte of an
        # answer: the server's idle timeout passed as the request went out (uvicorn's and
        # Node's are 5 s), so the server never read it. Once more, on a new connection.
        # Under load such closes come in batches (the server's timers run late, together),
        # and each would count against the deployment's breaker (seen: 100 concurrent calls
        # failed, the breaker open for all that followed). A new connection, or one reused
        # straight after its last answer, that fails is never sent again here: that server
        # may have read the request.
        log.debug("%s closed a kept-alive connection under a request: sent again", self.host)
        conn = await self._acquire(loop, wait, fresh=True)
        return await conn.exchange(request, deadline, read_timeout_s)

    async def _acquire(
        self, loop: asyncio.AbstractEventLoop, timeout_s: float | None, fresh: bool = False
    ) -> Connection:
        """A connection for one exchange: an idle one, or a new one (``fresh``: only that)."""
        if loop is not self._loop:  # connections belong to the loop that opened them
            self._drop_all()
            self._loop = loop
        oldest = loop.time() - self.keepalive_s
        while self._idle and not fresh:
            conn = self._idle.pop()
            if conn.reusable(oldest):
                conn.idle_for = loop.time() - conn.idle_since
                return conn
            conn.close()
            self._lost(conn)
        if fresh and self._open >= self.max_connections and self._idle:
            stale = self._idle.pop(0)  # the longest idle makes room for the new one
            stale.close()
            self._lost(stale)
        while self._open >= self.max_connections:
            waiter: asyncio.Future[Connection | None] = loop.create_future()
            self._waiting.append(waiter)
            try:
                handed = await asyncio.wait_for(waiter, timeout_s)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"all {self.max_connections} connections to {self.host} stayed busy"
                ) from None
            if handed is not None and not handed.closing():
                return handed  # it has just carried a whole response: not a stale one
            if handed is not None:  # closed by the server since it was handed over
                self._lost(handed)
        self._open += 1
        try:
            return await self._connect(loop, timeout_s)
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, timeout_s: float | None
    ) -> Connection:
        where = f"{self.host}:{self.port}"
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Connection(self),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls else None,
                ),
                timeout_s,
            )
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {where} took over {timeout_s} s") from None
        except ssl.SSLError as exc:
            raise UpstreamClosed(f"TLS with {where} failed: {exc.reason or exc}") from exc
        except OSError as exc:
            raise UpstreamClosed(f"cannot connect to {where}: {exc.strerror or exc}") from exc
        return conn

    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the pool opened a connection outside any loop"
        return self._loop

    def release(self, conn: Connection) -> None:
        """A response read to its end: its connection serves the next request."""
        if self.closed or not conn.keep_alive or conn.closing():
            conn.close()
            self._lost(conn)
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self.loop().time()
        self._idle.append(conn)

    def _lost(self, conn: Connection) -> None:
        """``conn`` will serve no more requests; its slot is free."""
        if conn.counted:
            conn.counted = False
            if conn.generation == self.generation:
                self._open -= 1
                self._wake()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # a slot is free: it opens a connection of its own
                return

    def _drop_all(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle = []
        self._open = 0
        self.generation += 1
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_exception(UpstreamClosed("the upstream client was closed"))
        self._waiting.clear()

    def forget(self, conn: Connection) -> None:
        """The server closed ``conn`` (idle or not)."""
        if conn in self._idle:
            self._idle.remove(conn)
        self._lost(conn)

    async def aclose(self) -> None:
        self.closed = True
        self._drop_all()
