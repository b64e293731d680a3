"""A stand-in OpenAI-compatible upstream that injects faults on cue, for routing tests.

This is a stand-in, not a model. Every ``POST /v1/chat/completions`` is answered by the next
behaviour scripted for the request's ``model`` (then that model's default, then the global
default, :func:`ok`), and every request is recorded, so a test can say what reached which
deployment and when. It runs under a real uvicorn, so the gateway's HTTP client sees real
sockets: a connection reset is a TCP RST, a timeout is a reply that does not come.

    upstream = FaultyUpstream()
    upstream.script("primary", status(503), ok("hi"))    # first call fails, second answers
    upstream.always("backup", hang(5))                   # every call to "backup" hangs
    with upstream.running():                             # upstream.base_url: ".../v1"
        ...
    assert upstream.count("primary") == 2

A behaviour is a plain async function ``(request, body) -> Response``; the factories below
cover the faults the router must survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import ADMIN_KEY, serve_in_thread

Json = dict[str, Any]
Behaviour = Callable[[Request, Json], Awaitable[Response]]
SSE = "text/event-stream"


@dataclass(frozen=True)
class Received:
    model: str
    at: float  # time.monotonic() when the request arrived
    body: Json


class FaultyUpstream:
    """Scripted behaviours per model name, and a record of every request received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Behaviour]] = defaultdict(deque)
        self._defaults: dict[str, Behaviour] = {}
        self._default: Behaviour = ok()
        self.received: list[Received] = []
        self.base_url = ""

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """Answer the next requests for ``model`` with these, in order."""
        with self._lock:
            self._queues[model].extend(behaviours)

    def always(self, model: str, behaviour: Behaviour) -> None:
        """Answer ``model`` with this once its script has run out (replacing any earlier one)."""
        with self._lock:
            self._defaults[model] = behaviour

    def forget(self) -> FaultyUpstream:
        """Drop every script, default and record, so one running stand-in serves many tests."""
        with self._lock:
            self._queues.clear()
            self._defaults.clear()
            self.received.clear()
        return self

    def count(self, model: str) -> int:
        with self._lock:
            return sum(1 for r in self.received if r.model == model)

    def times(self, model: str) -> list[float]:
        with self._lock:
            return [r.at for r in self.received if r.model == model]

    def _next(self, model: str) -> Behaviour:
        with self._lock:
            queue = self._queues[model]
            if queue:
                return queue.popleft()
            return self._defaults.get(model, self._default)

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        model = str(body.get("model"))
        with self._lock:
            self.received.append(Received(model, time.monotonic(), body))
        return await self._next(model)(request, body)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._chat, methods=["POST"]),
            ]
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[FaultyUpstream]:
        """Serve on a loopback port; ``base_url`` is what a provider entry points at."""
        with serve_in_thread(self.app()) as url:
            self.base_url = url + "/v1"
            yield self


# -- behaviours: answers ---------------------------------------------------------------------


def _completion(model: str, content: str) -> Json:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def _chunk(model: str, delta: Json | None = None, finish: str | None = None) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    payload = {
        "id": "chatcmpl-standin",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(payload: Json) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _usage_chunk(model: str) -> bytes:
    return _event(
        {
            "id": "chatcmpl-standin",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )


def _tokens(content: str) -> list[str]:
    words = content.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def embedded(dimensions: int = 4, prompt_tokens: int | None = None) -> Behaviour:
    """An embeddings reply: one vector per input, usage as given (or one per input)."""

    async def behave(request: Request, body: Json) -> Response:
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = [
            {"object": "embedding", "index": i, "embedding": [0.5] * dimensions}
            for i in range(len(items))
        ]
        tokens = len(items) if prompt_tokens is None else prompt_tokens
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Response(orjson.dumps(payload), media_type="application/json")

    return behave


def reporting(completion_tokens: int, content: str = "short") -> Behaviour:
    """An answer whose usage claims ``completion_tokens``, whatever max_tokens said."""

    async def behave(request: Request, body: Json) -> Response:
        reply = _completion(str(body.get("model")), content)
        reply["usage"] = {
            "prompt_tokens": 3,
            "completion_tokens": completion_tokens,
            "total_tokens": 3 + completion_tokens,
        }
        return Response(orjson.dumps(reply), media_type="application/json")

    return behave


def ok(content: str = "hello from the stand-in", delay_s: float = 0.0) -> Behaviour:
    """A normal answer: JSON, or for ``stream: true`` a well-formed SSE stream."""

    async def behave(request: Request, body: Json) -> Response:
        if delay_s:
            await asyncio.sleep(delay_s)
        model = str(body.get("model"))
        if body.get("stream"):
            return _sse(_well_formed(model, _tokens(content)))
        return Response(orjson.dumps(_completion(model, content)), media_type="application/json")

    return behave


def stream(
    tokens: Sequence[str] = ("Hello", " world"), *, first_delay_s: float = 0.0, gap_s: float = 0.0
) -> Behaviour:
    """A well-formed stream whose role chunk comes at once and whose tokens may come slowly."""

    async def behave(request: Request, body: Json) -> Response:
        return _sse(_well_formed(str(body.get("model")), list(tokens), first_delay_s, gap_s))

    return behave


async def _well_formed(
    model: str, tokens: list[str], first_delay_s: float = 0.0, gap_s: float = 0.0
) -> AsyncIterator[bytes]:
    yield _chunk(model, {"role": "assistant", "content": ""})
    await asyncio.sleep(first_delay_s)
    for i, token in enumerate(tokens):
        if i:
            await asyncio.sleep(gap_s)
        yield _chunk(model, {"content": token})
    yield _chunk(model, {}, finish="stop")
    yield _usage_chunk(model)
    yield b"data: [DONE]\n\n"


def _sse(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(events, media_type=SSE, headers={"cache-control": "no-cache"})


# -- behaviours: faults ------------------------------------------------------------------------


def status(
    code: int,
    message: str = "stand-in failure",
    *,
    error_code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Behaviour:
    """An OpenAI-style error body with this HTTP status."""

    async def behave(request: Request, body: Json) -> Response:
        payload = {
            "error": {
                "message": message,
                "type": "server_error" if code >= 500 else "invalid_request_error",
                "param": None,
                "code": error_code,
            }
        }
        return Response(
            orjson.dumps(payload), status_code=code, media_type="application/json", headers=headers
        )

    return behave


def rate_limited(retry_after_s: float | None = None) -> Behaviour:
    headers = {"retry-after": f"{retry_after_s:g}"} if retry_after_s is not None else None
    return status(429, "Rate limit reached", error_code="rate_limit_exceeded", headers=headers)


def context_too_long() -> Behaviour:
    return status(
        400,
        "This model's maximum context length is 8192 tokens",
        error_code="context_length_exceeded",
    )


def content_filter() -> Behaviour:
    return status(
        400,
        "The response was filtered by the content management policy",
        error_code="content_filter",
    )


def bad_request() -> Behaviour:
    return status(400, "Invalid value for 'temperature'", error_code="invalid_value")


def hang(seconds: float = 10.0) -> Behaviour:
    """No reply for ``seconds`` (longer than the attempt timeout), then a normal answer.

    Stops waiting as soon as the caller hangs up, so a test's teardown never waits it out.
    """

    async def behave(request: Request, body: Json) -> Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_disconnected(request), seconds)
        return await ok()(request, body)

    return behave


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def reset() -> Behaviour:
    """Close the TCP connection with an RST and no reply at all.

    ASGI gives an app no socket, so this reaches uvicorn's transport through the bound
    ``receive`` it passes in; SO_LINGER 0 turns the close into a reset rather than a FIN.
    """

    async def behave(request: Request, body: Json) -> Response:
        transport = getattr(getattr(request.receive, "__self__", None), "transport", None)
        if transport is None:
            raise RuntimeError("stand-in cannot reach the connection to reset it")
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await _disconnected(request)  # uvicorn drops anything sent after this
        return Response(b"")

    return behave


def malformed_json() -> Behaviour:
    """A 200 whose body is cut off mid-JSON."""

    async def behave(request: Request, body: Json) -> Response:
        return Response(
            b'{"id": "chatcmpl-standin", "choices": [{"index": 0, "mess',
            media_type="application/json",
        )

    return behave


def stream_error(
    after_tokens: Sequence[str] = (),
    message: str = "upstream overloaded",
    code: str = "server_error",
) -> Behaviour:
    """A 200 stream that sends an ``{"error": ...}`` event, before or after some tokens."""

    async def behave(request: Request, body: Json) -> Response:
        model = str(body.get("model"))

        async def events() -> AsyncIterator[bytes]:
            yield _chunk(model, {"role": "assistant", "content": ""})
            for token in after_tokens:
                yield _chunk(model, {"content": token})
            yield _event({"error": {"message": message, "type": "server_error", "code": code}})

        return _sse(events())

    return behave


def stream_unfinished(tokens: Sequence[str] = ("Hello",)) -> Behaviour:
    """A 200 stream that stops (cleanly, at the HTTP level) with no finish and no [DONE]."""

    async def behave(request: Request, body: Json) -> Response:
        model = str(body.get("model"))

        async def events() -> AsyncIterator[bytes]:
            yield _chunk(model, {"role": "assistant", "content": ""})
            for token in tokens:
                yield _chunk(model, {"content": token})

        return _sse(events())

    return behave


# -- driving the gateway against it ------------------------------------------------------------


def routed_config(
    base_url: str,
    route: Json,
    *,
    models: Sequence[str] = ("primary", "backup"),
    breaker: Json | None = None,
    model_extra: dict[str, Json] | None = None,
) -> Json:
    """A gateway config with deployments named as their upstream models, and feature ``chat``."""
    extra = model_extra or {}
    config: Json = {
        "providers": {"up": {"kind": "openai", "base_url": base_url, "api_key": "sk-standin"}},
        "models": {m: {"provider": "up", "model": m, **extra.get(m, {})} for m in models},
        "features": {"chat": {"owner": "routing-tests", "route": route}},
    }
    if breaker is not None:
        config["breaker"] = breaker
    return config


def chat(url: str, *, model: str = "chat", timeout: float = 10.0, **body: Any) -> httpx.Response:
    """One non-streaming chat request to the gateway, as the admin."""
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(
        f"{url}/v1/chat/completions",
        json=payload,
        timeout=timeout,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
