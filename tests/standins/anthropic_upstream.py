"""A stand-in for the Anthropic Messages API, for tests only: not Anthropic, not a mock of
the provider, but a small Starlette app that speaks the documented wire format on
``POST /v1/messages`` so the real provider and the real gateway can be exercised end to end.

    upstream = AnthropicStandIn()
    with serve_in_thread(upstream.app()) as url:
        upstream.script.text = "Hello"                         # the reply
        upstream.script.tool_uses = [("get_weather", {"city": "Paris"})]
        upstream.script.error = (529, "overloaded_error", "Overloaded")
        upstream.script.stream_error = ("overloaded_error", "Overloaded")
        ...
        upstream.last_request["system"]                        # what the provider sent

It checks what the real API checks and a request translation could get wrong: the
``x-api-key`` and ``anthropic-version`` headers, required ``model``/``max_tokens``/``messages``,
no unknown top-level fields, user/assistant turns that alternate and start with the user,
and every ``tool_use`` answered by a ``tool_result`` at the start of the next user turn.
Errors come back in the documented shape ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

Json = dict[str, Any]

API_KEY = "sk-ant-standin-key"
_FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "stream",
        "thinking",
        "service_tier",
    }
)


@dataclass
class Script:
    """What the next replies look like; tests change fields, :meth:`reset` restores them."""

    text: str = "Hello from the stand-in."
    tool_uses: list[tuple[str, Json]] = field(default_factory=list)
    stop_reason: str | None = None  # default: tool_use if tool_uses else end_turn
    input_tokens: int = 12
    output_tokens: int = 7
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    error: tuple[int, str, str] | None = None  # (status, error type, message)
    retry_after: str | None = None
    stream_error: tuple[str, str] | None = None  # an error event after the first text delta
    truncate_stream: bool = False  # end the stream after the text, without message_stop


def error_response(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": "req_standin",
    }
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


class AnthropicStandIn:
    def __init__(self, api_key: str = API_KEY):
        self.api_key = api_key
        self.script = Script()
        self.requests: list[Json] = []
        self.headers: list[dict[str, str]] = []
        self._ids = itertools.count(1)

    def reset(self) -> None:
        self.script = Script()
        self.requests.clear()
        self.headers.clear()

    @property
    def last_request(self) -> Json:
        return self.requests[-1]

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> Response:
        self.headers.append(dict(request.headers))
        if request.headers.get("x-api-key") != self.api_key:
            return error_response(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error_response(
                400, "invalid_request_error", "anthropic-version: header is required"
            )
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error_response(400, "invalid_request_error", "request body is not JSON")
        self.requests.append(body)
        problem = _problem(body)
        if problem:
            return error_response(400, "invalid_request_error", problem)
        script = self.script
        if script.error:
            status, error_type, message = script.error
            extra = {"retry-after": script.retry_after} if script.retry_after else None
            return error_response(status, error_type, message, extra)
        if body.get("stream"):
            return StreamingResponse(self._events(body, script), media_type="text/event-stream")
        return Response(orjson.dumps(self._message(body, script)), media_type="application/json")

    def _message(self, body: Json, script: Script) -> Json:
        content: list[Json] = [{"type": "text", "text": script.text}] if script.text else []
        for name, arguments in script.tool_uses:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{next(self._ids):04d}",
                    "name": name,
                    "input": arguments,
                }
            )
        return {
            "id": f"msg_{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": script.stop_reason or ("tool_use" if script.tool_uses else "end_turn"),
            "stop_sequence": None,
            "usage": _usage(script),
        }

    async def _events(self, body: Json, script: Script) -> AsyncIterator[bytes]:
        message = self._message(body, script)
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**message["usage"], "output_tokens": 1},
        }
        yield _event("message_start", {"message": start})
        yield _event("ping", {})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield _event(
                    "content_block_start",
                    {"index": index, "content_block": {"type": "text", "text": ""}},
                )
                for piece in _pieces(block["text"], 8):
                    delta = {"type": "text_delta", "text": piece}
                    yield _event("content_block_delta", {"index": index, "delta": delta})
                    if script.stream_error:
                        error_type, text = script.stream_error
                        yield _event("error", {"error": {"type": error_type, "message": text}})
                        return
            else:
                start_block = {**block, "input": {}}
                yield _event("content_block_start", {"index": index, "content_block": start_block})
                for piece in ["", *_pieces(orjson.dumps(block["input"]).decode(), 5)]:
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    yield _event("content_block_delta", {"index": index, "delta": delta})
            yield _event("content_block_stop", {"index": index})
        if script.truncate_stream:
            return
        delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        yield _event(
            "message_delta", {"delta": delta, "usage": {"output_tokens": script.output_tokens}}
        )
        yield _event("message_stop", {})


def _problem(body: Json) -> str | None:
    """The first reason the real API would reject this body with a 400, if any."""
    for name in body:
        if name not in _FIELDS:
            return f"{name}: Extra inputs are not permitted"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    expected_tool_ids: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if role != ("user" if i % 2 == 0 else "assistant"):
            return f"messages.{i}: roles must alternate between user and assistant, user first"
        blocks = message.get("content")
        blocks = [{"type": "text", "text": blocks}] if isinstance(blocks, str) else blocks
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if expected_tool_ids and (
            set(results) != expected_tool_ids
            or any(b.get("type") != "tool_result" for b in blocks[: len(results)])
        ):
            return (
                f"messages.{i}: tool_use ids were found without tool_result blocks "
                "immediately after"
            )
        expected_tool_ids = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    for i, tool in enumerate(body.get("tools") or ()):
        if not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
            return f"tools.{i}: name and input_schema are required"
    return None


def _usage(script: Script) -> Json:
    return {
        "input_tokens": script.input_tokens,
        "output_tokens": script.output_tokens,
        "cache_read_input_tokens": script.cache_read_input_tokens,
        "cache_creation_input_tokens": script.cache_creation_input_tokens,
    }


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _event(kind: str, data: Json) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"
