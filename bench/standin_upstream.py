"""The stand-in upstream: a minimal OpenAI-compatible server that answers instantly.

Used by ``bench/gateway_overhead.py`` as the model provider behind bounded and LiteLLM,
and called directly as the baseline. It has to be much faster than anything measured
through it, so it is a bare asyncio protocol on uvloop with the C ``httptools`` parser:
HTTP/1.1 keep-alive (and pipelining), no framework, every reply body built once at start.

    POST /v1/chat/completions  {"stream": false}  -> a fixed chat.completion JSON with usage
    POST /v1/chat/completions  {"stream": true}   -> SSE: role chunk, 3 content chunks,
                                                     finish chunk, usage chunk (only with
                                                     stream_options.include_usage), [DONE]
    GET  anything                                 -> 200 {"status":"ok"} (health checks)
    anything else                                 -> 404

Run:  python bench/standin_upstream.py --port 8001   (prints "ready <port>" on stdout)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import Any

import httptools
import orjson

MODEL = "stub-model"
CONTENT_PARTS = ("The capital", " of France", " is Paris.")
CONTENT = "".join(CONTENT_PARTS)
USAGE = {"prompt_tokens": 14, "completion_tokens": 7, "total_tokens": 21}
CREATED = int(time.time())


def _completion() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_standin",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": CONTENT, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_standin",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _sse(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _stream(include_usage: bool) -> bytes:
    events = [_sse(_chunk({"role": "assistant", "content": ""}))]
    events += [_sse(_chunk({"content": part})) for part in CONTENT_PARTS]
    events.append(_sse(_chunk({}, "stop")))
    if include_usage:
        usage_chunk = {**_chunk({}), "choices": [], "usage": USAGE}
        events.append(_sse(usage_chunk))
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def _fixed(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _chunked(body: bytes) -> bytes:
    # One write with all events: the upstream is "instant"; chunked framing as OpenAI does.
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    return head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


COMPLETION_REPLY = _fixed("200 OK", "application/json", _completion())
STREAM_REPLY = _chunked(_stream(include_usage=False))
STREAM_USAGE_REPLY = _chunked(_stream(include_usage=True))
HEALTH_REPLY = _fixed("200 OK", "application/json", b'{"status":"ok"}')
NOT_FOUND_REPLY = _fixed(
    "404 Not Found",
    "application/json",
    b'{"error":{"message":"not found","type":"not_found_error"}}',
)
BAD_REQUEST_REPLY = _fixed(
    "400 Bad Request",
    "application/json",
    b'{"error":{"message":"body is not JSON","type":"invalid_request_error"}}',
)


class Connection(asyncio.Protocol):
    __slots__ = ("body", "parser", "transport", "url")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(BAD_REQUEST_REPLY)
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None:
            return
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        if method == b"POST" and path.endswith(b"/chat/completions"):
            reply = self._chat(b"".join(self.body))
        elif method == b"GET":
            reply = HEALTH_REPLY
        else:
            reply = NOT_FOUND_REPLY
        transport.write(reply)
        if not self.parser.should_keep_alive():
            self._close()

    @staticmethod
    def _chat(raw: bytes) -> bytes:
        # Cheap test first; parse JSON only when the body mentions streaming at all.
        if b'"stream"' not in raw:
            return COMPLETION_REPLY
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return BAD_REQUEST_REPLY
        if not isinstance(body, dict) or body.get("stream") is not True:
            return COMPLETION_REPLY
        options = body.get("stream_options") or {}
        return STREAM_USAGE_REPLY if options.get("include_usage") else STREAM_REPLY


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Connection, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"ready {bound}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, just slower
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
