"""One exchange on one socket: the upstream client's connection and response.

:class:`Connection` is the asyncio protocol (httptools parses what arrives), :class:`Response`
the status, headers and body of the exchange under way; the pool that lends connections out
is :class:`bounded.providers.transport.Upstream`, where the module docstring says what the
client does and why.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Protocol

import httptools

PAUSE_BYTES = 256 * 1024  # a stream's unread body past this pauses reading from the socket


class UpstreamClosed(ConnectionError):
    """The exchange failed on the wire: refused, reset, closed early, or not HTTP."""


class UpstreamTimeout(TimeoutError):
    """No complete answer (or no next bytes of one) within the time given."""


class Pool(Protocol):
    """What a connection needs of the pool that lent it (``transport.Upstream``)."""

    generation: int

    def loop(self) -> asyncio.AbstractEventLoop: ...

    def release(self, conn: Connection) -> None: ...

    def forget(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """One socket to the upstream, one exchange at a time."""

    def __init__(self, pool: Pool):
        self.pool = pool
        self.generation = pool.generation
        self.counted = True  # holds one of the pool's max_connections
        self.transport: asyncio.Transport | None = None
        self.keep_alive = True
        self.idle_since = 0.0
        self.idle_for = 0.0  # how long it waited in the pool before this exchange
        self.heard = False  # any byte of the current exchange's response arrived
        self._parser = httptools.HttpResponseParser(self)
        self._response: Response | None = None

    def reusable(self, oldest: float) -> bool:
        return not self.closing() and self.idle_since >= oldest

    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def exchange(
        self, request: bytes, deadline: float | None, read_timeout_s: float | None
    ) -> Response:
        assert self.transport is not None
        resp = self._response = Response(self, self.pool.loop(), deadline, read_timeout_s)
        self.heard = False
        self.transport.write(request)
        try:
            await resp.wait_head()
        except BaseException:  # failed, timed out or cancelled: the socket is mid-exchange
            resp.close()
            raise
        return resp

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.heard = True
        resp = self._response
        if resp is None:  # bytes while idle: nothing may follow a finished response
            self.keep_alive = False
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            resp.fail(UpstreamClosed("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            resp.fail(UpstreamClosed(f"the upstream's response is not valid HTTP ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        resp = self._response
        if resp is not None and not resp.complete:
            if resp.status and resp.to_eof:
                resp.finish()  # no length and not chunked: the close ends the body
            else:
                why = f" ({exc})" if exc else ""
                resp.fail(UpstreamClosed(f"the upstream closed the connection mid-response{why}"))
        self.pool.forget(self)

    # -- httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._response is not None
        self._response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        resp = self._response
        assert resp is not None
        status = self._parser.get_status_code()
        if status < 200:  # an interim response (100 Continue): the real one follows
            resp.headers = {}
            return
        resp.status = status
        headers = resp.headers
        resp.to_eof = "content-length" not in headers and "chunked" not in headers.get(
            "transfer-encoding", ""
        )
        coding = headers.get("content-encoding", "").strip().lower()
        if coding in ("gzip", "deflate"):
            resp.inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        resp.head_ready()

    def on_body(self, data: bytes) -> None:
        assert self._response is not None
        self._response.add(data)

    def on_message_complete(self) -> None:
        resp = self._response
        assert resp is not None
        if not resp.status:  # the end of an interim response
            return
        self.keep_alive = self._parser.should_keep_alive()
        resp.finish()

    def done(self) -> None:
        """The response was read to its end (the parser is ready for the next one)."""
        self._response = None
        self.idle_for = 0.0  # until the pool says how long it waited (a handover: none)
        self.pool.release(self)

    def abandon(self) -> None:
        """The response is given up half-read: the connection cannot be reused."""
        self._response = None
        self.keep_alive = False
        self.close()


class Response:
    """Status and headers (names lower-case), then the body read once: :meth:`read` or
    :meth:`lines`. Use as ``async with``: leaving it unread closes the connection."""

    def __init__(
        self,
        conn: Connection,
        loop: asyncio.AbstractEventLoop,
        deadline: float | None,
        read_timeout_s: float | None,
    ):
        self._conn = conn
        self._loop = loop
        self.status = 0
        self.headers: dict[str, str] = {}
        self.to_eof = False
        self.inflate: Any = None
        self.complete = False
        self._parts: list[bytes] = []
        self._size = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._read_timeout = read_timeout_s
        self._timer: asyncio.TimerHandle | None = None
        self._released = False
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._deadline_passed)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    async def read(self) -> bytes:
        """The whole body."""
        while not self.complete:
            await self._wait()
        if self._error is not None:
            self.close()
            raise self._error
        body = b"".join(self._parts)
        self._parts = []
        self.close()
        return self._decoded(body, final=True)

    async def lines(self) -> AsyncIterator[bytes]:
        """The body line by line, each with its line end (the last may have none)."""
        rest = b""
        while True:
            if self._error is not None:
                self.close()
                raise self._error
            if self._parts:
                data = self._decoded(b"".join(self._parts), final=False)
                self._parts, self._size = [], 0
                self._resume()
                *full, rest = (rest + data).split(b"\n")
                for line in full:
                    yield line + b"\n"
            elif self.complete:
                tail = self._decoded(b"", final=True)
                if rest or tail:
                    *full, last = (rest + tail).split(b"\n")
                    for line in full:
                        yield line + b"\n"
                    if last:
                        yield last
                self.close()
                return
            else:
                await self._wait()

    def close(self) -> None:
        """Done with it: the connection goes back to the pool if the body was read to its
        end, else it is closed."""
        if self._released:
            return
        self._released = True
        if self._timer is not None:
            self._timer.cancel()
        if self.complete and self._error is None:
            self._conn.done()
        else:
            self._conn.abandon()

    def _decoded(self, data: bytes, *, final: bool) -> bytes:
        if self.inflate is None:
            return data
        try:
            out: bytes = self.inflate.decompress(data)
            return out + self.inflate.flush() if final else out
        except zlib.error as exc:
            raise UpstreamClosed(f"the upstream's compressed body is corrupt ({exc})") from None

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        idle = None
        if self._read_timeout is not None:
            idle = self._loop.call_later(self._read_timeout, self._idle_check)
        try:
            await waiter
        finally:
            self._waiter = None
            if idle is not None:
                idle.cancel()
        if self._error is not None:
            raise self._error

    async def wait_head(self) -> None:
        while not self.status:
            await self._wait()

    # -- fed by the connection ---------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def head_ready(self) -> None:
        self._wake()

    def add(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size > PAUSE_BYTES and self._conn.transport is not None:
            self._conn.transport.pause_reading()
        self._wake()

    def _resume(self) -> None:
        transport = self._conn.transport
        if transport is not None and not transport.is_closing() and not self.complete:
            transport.resume_reading()

    def finish(self) -> None:
        self.complete = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self.complete = True
        self._conn.keep_alive = False
        self._conn.close()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _deadline_passed(self) -> None:
        self._timer = None
        if not (self.complete and self._error is None):
            self.fail(UpstreamTimeout("the upstream's answer did not complete in time"))

    def _idle_check(self) -> None:
        if self._read_timeout is not None:
            self.fail(UpstreamTimeout(f"no bytes from the upstream for {self._read_timeout} s"))
