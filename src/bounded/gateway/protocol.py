"""Limits on receiving a request, at the HTTP/1.1 protocol: head size and head/body timeouts.

uvicorn's httptools protocol reads a request head of any size and waits for a slow client
forever (it only closes an idle keep-alive connection). :func:`protocol_for` returns its
subclass bound to the ``server:`` settings::

    uvicorn.run(app, http=protocol_for(config.server), ...)

- a head (request line and headers) over ``max_header_bytes``, or one header value over
  ``max_header_value_bytes``: 431 ``headers_too_large``. Head bytes are counted as they
  arrive, so an oversize head is refused without being read (or buffered) in full.
- a head not complete ``header_timeout_s`` after the connection opened or after the request's
  first byte: 408 ``request_timeout`` (a connection that sent nothing is just closed).
- a body not complete ``body_timeout_s`` after its headers, plus one second for every
  ``body_min_bytes_per_s`` bytes received so far (Apache's mod_reqtimeout ``MinRate``): 408.
  A client that keeps up that rate is never cut; one that stalls or trickles is.

Each refusal answers in an OpenAI-style JSON body where no response is under way, then closes
the connection. The timers watch only the receiving of a request: none runs while a response
is sent (an SSE stream may last minutes), each request on a keep-alive connection gets fresh
ones, and time in which the server itself is not reading (backpressure, a pipelined request
waiting its turn) is not held against the client.

Cost on the hot path: a flag test and a counter per read, a few attribute stores per request;
a timer is armed only when a head or a body spans several reads. A pipelined request whose head
starts inside the read that ended the previous request is counted from the next read on (so
by at most one read too little).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from bounded.config.schema import ServerConfig
from bounded.gateway.whole_response import EXTENSION, WholeResponseCycle


def protocol_for(server: ServerConfig) -> type[LimitedHttpToolsProtocol]:
    """uvicorn's ``http=`` class with these limits (uvicorn builds one per connection)."""
    return type("BoundedHttpProtocol", (LimitedHttpToolsProtocol,), {"settings": server})


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the reply is in ``_refusal``."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    settings: ClassVar[ServerConfig] = ServerConfig()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self._max_head = s.max_header_bytes
        self._max_value = s.max_header_value_bytes
        self._header_timeout = s.header_timeout_s
        self._body_timeout = s.body_timeout_s
        self._min_rate = s.body_min_bytes_per_s
        self._max_body = s.max_body_bytes
        self._in_body = False  # between a request's headers and the end of its body
        # Bytes of the current head so far; -1 after a request ended: the next head may have
        # begun inside that same read, its size unknown.
        self._head_bytes = 0
        self._body_bytes = 0  # bytes read since the body timer started
        self._body_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer = self.loop.call_later(self._header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._in_body:
            self._body_bytes += len(data)
            self._feed(data)
        else:
            self._head_received(data)
        if self._timer is None and (self._in_body or self._head_bytes > 0):
            self._arm()

    # -- parser callbacks --------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._cancel_timer()
        self._in_body = True
        # A head within the value limit cannot hold a value over it: scan only larger heads
        # (or a pipelined one, whose size is unknown).
        if not 0 <= self._head_bytes <= self._max_value:
            self._check_values()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope and type(cycle) is RequestResponseCycle:
            # This request's cycle, made just now; its app has not run yet (its task starts
            # on a later turn of the loop). It learns one more message, and the app is told.
            cycle.__class__ = WholeResponseCycle
            self.scope["extensions"] = {EXTENSION: {}}

    def on_message_complete(self) -> None:
        self._in_body = False
        self._head_bytes = -1
        self._cancel_timer()
        super().on_message_complete()

    # -- receiving ---------------------------------------------------------------------------

    def _head_received(self, data: bytes) -> None:
        seen = max(self._head_bytes, 0)
        room = self._max_head - seen
        self._head_bytes = seen + len(data)
        if len(data) <= room:
            self._feed(data)
            return
        # Feed no more than the limit allows; the rest only if the head ended inside it.
        view = memoryview(data)
        self._feed(view[:room])
        if self._gone():
            return
        if self._in_body or self._head_bytes < 0:
            self._feed(view[room:])
            return
        self._refuse_head(
            431, "headers_too_large", f"the request head exceeds {self._max_head} bytes"
        )

    def _feed(self, data: bytes | memoryview) -> None:
        """uvicorn's ``data_received``, plus the refusals raised in parser callbacks."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse_head(*self._refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _check_values(self) -> None:
        limit = self._max_value
        for name, value in self.headers:
            if len(value) > limit:
                self._refusal = (
                    431,
                    "headers_too_large",
                    f"the {name.decode('latin-1')} header exceeds {limit} bytes",
                )
                raise _Refused

    # -- timers ------------------------------------------------------------------------------

    def _arm(self) -> None:
        """A body, or a head that has begun, spans reads (an idle keep-alive is uvicorn's)."""
        if self._gone():
            return
        if self._in_body:
            self._body_since = self.loop.time()
            self._body_bytes = 0
            self._timer = self.loop.call_later(self._body_timeout, self._body_timed_out)
        else:
            self._timer = self.loop.call_later(self._header_timeout, self._head_timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._in_body or self._gone():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is still being sent (pipelining): the next request waits its turn.
            self._timer = self.loop.call_later(self._header_timeout, self._head_timed_out)
            return
        if self._head_bytes <= 0:
            self.transport.close()  # nothing was asked: nothing to answer
            return
        message = f"the request head did not arrive within {self._header_timeout:g} s"
        self._refuse_head(408, "request_timeout", message)

    def _body_timed_out(self) -> None:
        self._timer = None
        if not self._in_body or self._gone():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the server is not reading: the client cannot be late
            self._body_since, self._body_bytes = now, 0
        earned = min(self._body_bytes, self._max_body) / self._min_rate if self._min_rate else 0.0
        deadline = self._body_since + self._body_timeout + earned
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._body_timed_out)
            return
        cycle = self.cycle
        if cycle.response_started:
            self.transport.close()  # the app answered early; the rest of the body is moot
            return
        cycle.disconnected = True  # the app's receive() gets http.disconnect, its send() is dropped
        cycle.message_event.set()
        waited = now - self._body_since
        message = (
            f"the request body did not arrive in time ({self._body_bytes} bytes in {waited:.1f} s)"
        )
        self._reply(408, "request_timeout", message)

    # -- replies -----------------------------------------------------------------------------

    def _gone(self) -> bool:
        return self.transport.is_closing() or self.transport.get_protocol() is not self

    def _refuse_head(self, status: int, code: str, message: str) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # mid-response (pipelining): no room for another reply
        else:
            self._reply(status, code, message)

    def _reply(self, status: int, code: str, message: str) -> None:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        body = orjson.dumps({"error": error})
        parts = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        parts += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(parts))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.transport.set_protocol(_Lingering(self))
        else:
            self.transport.close()


class _Lingering(asyncio.Protocol):
    """A refused connection after its reply: read and drop whatever the client still sends.

    Closing at once, with the rest of an oversize head still arriving, would reset the
    connection, and a reset can destroy the reply before the client reads it; so the write side
    is shut (the client sees the reply, then end of file) and the socket is closed when the
    client closes its side, or after ``LINGER_S`` at most.
    """

    LINGER_S = 2.0

    def __init__(self, owner: LimitedHttpToolsProtocol) -> None:
        self.owner = owner
        self.timer = owner.loop.call_later(self.LINGER_S, owner.transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> None:
        self.owner.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        self.owner.connection_lost(exc)  # uvicorn's bookkeeping for the connection
