"""A JSON answer sent in one write: its head and body built as bytes, one ASGI message.

    return JsonAnswer(orjson.dumps(body), {"x-bounded-trace-id": trace_id}, status=200)

Why: the chat endpoint's answer carries about a dozen headers (content type and length, the
trace id, the route, attempts, cost, and six ``x-ratelimit-*`` with a rate limit). Through
Starlette's ``Response`` and uvicorn's ``send`` each header is lower-cased and encoded by the
one and searched with two regular expressions by the other, and the head and the body leave
in two writes. Counted with callgrind (``bench/instructions.py``), the six rate-limit headers
alone cost about 50k instructions a request, a third of all that economics added.

The protocol (:mod:`bounded.gateway.protocol`) advertises an ASGI extension,
``bounded.whole_response``, in the scope of every request it serves; an app that finds it
may answer with one message instead of ``http.response.start`` and ``http.response.body``::

    {"type": "bounded.whole_response", "status": 200,
     "head": b"name: value\\r\\n...", "body": b"..."}

``head`` is the response's header lines, checked by the sender (:class:`JsonAnswer` checks
every name and every value for the characters uvicorn refuses, all names at once and all
values at once); the cycle adds uvicorn's default headers (``date``, ``server``), ``content-length``
and, on a connection that will close, ``connection: close``, and writes head and body at
once. Without the extension (another ASGI server, an in-process test client)
:class:`JsonAnswer` sends the two standard messages, with the same headers.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from bounded.economics.accountant import headers_to_lines, lines_to_headers

EXTENSION = "bounded.whole_response"
JSON = "application/json"
# The bytes uvicorn lets through in a header name and in a value, from its own two patterns.
_NAME_BYTES = bytes(b for b in range(256) if not HEADER_RE.search(bytes([b])))
_VALUE_BYTES = bytes(b for b in range(256) if not HEADER_VALUE_RE.search(bytes([b])))


class JsonAnswer:
    """An ASGI response: a JSON body, its status and headers (names in lower case).

    ``lines``: more headers as header lines ("name: value\r\n" each), sent as they are, not
    checked: only for lines bounded writes itself from names, digits and units (the
    accountant's ``x-ratelimit-*``, :attr:`bounded.economics.accountant.Hold.header_lines`).
    """

    __slots__ = ("body", "headers", "lines", "status_code")

    def __init__(
        self, body: bytes, headers: dict[str, str], status_code: int = 200, lines: str = ""
    ):
        self.body = body
        self.headers = headers
        self.status_code = status_code
        self.lines = lines

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = self.headers
        if not _valid(headers):
            raise RuntimeError("Invalid HTTP header name or value.")
        extensions = scope.get("extensions")
        status = self.status_code
        if extensions and EXTENSION in extensions and status >= 200 and status not in (204, 304):
            head = headers_to_lines(headers)
            await send(
                {
                    "type": EXTENSION,
                    "status": self.status_code,
                    "head": f"content-type: {JSON}\r\n{head}{self.lines}".encode("latin-1"),
                    "body": self.body,
                }
            )
            return
        if self.lines:
            headers = {**headers, **lines_to_headers(self.lines)}
        raw = [(b"content-type", JSON.encode())]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


def _valid(headers: dict[str, str]) -> bool:
    """Every name a token and no value with a control character: uvicorn's two checks, on all
    names at once and all values at once (the names concatenated are a token only if each is;
    the values joined by spaces hold a control character only if one does). Deleting the
    allowed bytes must leave nothing: a C loop over the bytes, where a regular expression
    search costs about 80 instructions a character."""
    names = "".join(headers).encode("latin-1")
    values = " ".join(headers.values()).encode("latin-1")
    return not names.translate(None, _NAME_BYTES) and not values.translate(None, _VALUE_BYTES)


class WholeResponseCycle(RequestResponseCycle):
    """uvicorn's request cycle, plus the ``bounded.whole_response`` message.

    The protocol turns each cycle into one of these before its app runs (the class adds no
    state, only this branch of ``send``); every other message is uvicorn's own."""

    async def send(self, message: Any) -> None:
        if message["type"] != EXTENSION:
            await super().send(message)
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if self.response_started:
            raise RuntimeError(f"Unexpected ASGI message '{EXTENSION}' after the response started.")
        status, body = message["status"], message["body"]
        if status < 200 or status in (204, 304):
            raise RuntimeError(f"'{EXTENSION}' is for responses with a body, not {status}.")
        self.response_started = True
        self.waiting_for_100_continue = False
        if self.access_log:  # as uvicorn logs it (bounded serve turns it off)
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status,
            )
        parts = [STATUS_LINE[status]]
        for name, value in self.default_headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (message["head"], b"content-length: %d\r\n" % len(body))
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if self.scope["method"] != "HEAD":
            parts.append(body)
        self.chunked_encoding = False
        self.expected_content_length = 0
        self.transport.write(b"".join(parts))
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
