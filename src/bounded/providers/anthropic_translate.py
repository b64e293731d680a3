"""OpenAI chat format <-> Anthropic Messages format, as pure functions over dicts.

    payload = to_messages_request(openai_body, stream=False)   # POST /v1/messages
    completion = from_messages_response(anthropic_reply)       # a chat.completion dict

What does not map one to one, and what is done instead:

- ``system``/``developer`` messages, wherever they stand, are joined (in order) into the
  top-level ``system``; Messages has no system role inside ``messages``.
- ``tool`` messages become ``tool_result`` blocks of a user turn; consecutive turns of one
  role are merged, because the API wants user and assistant turns to alternate.
- ``response_format`` cannot be enforced natively: ``json_object`` and ``json_schema`` become
  an instruction appended to ``system`` (the schema included). The output is therefore
  best effort; the validation piece checks it against the schema and repairs it.
- ``temperature`` above 1 is clamped to 1, the top of Anthropic's range, so a route that
  falls back from OpenAI to Anthropic still answers instead of failing with a 400.
- ``n`` above 1 and legacy ``function`` messages are rejected with :class:`BadRequest`;
  ``user`` becomes ``metadata.user_id``. Other OpenAI-only fields (penalties, seed,
  logprobs, stream_options...) are dropped: the Messages API rejects unknown fields.
- ``cache_control`` on a text part is kept, so prompt caching can be asked for.
- Image parts: ``data:`` URLs become base64 image blocks, http(s) URLs become URL image
  blocks; audio and file parts are rejected with :class:`BadRequest`.
- Thinking blocks in replies are dropped: the OpenAI chat format has no place for them.

Stream events are translated in :mod:`bounded.providers.anthropic_stream`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from bounded.errors import BadRequest
from bounded.providers.base import Json

DEFAULT_MAX_TOKENS = 4096
"""Messages requires ``max_tokens``; OpenAI clients usually leave it out."""

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


# -- request --------------------------------------------------------------------------------


def to_messages_request(body: Json, *, stream: bool) -> Json:
    """Translate an OpenAI chat request body into a Messages API request body."""
    if (body.get("n") or 1) > 1:
        raise BadRequest("Anthropic returns a single choice; 'n' must be 1")
    system, turns = _split_messages(body.get("messages") or [])
    system.extend(_format_instruction(body.get("response_format")))
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    out: Json = {
        "model": body["model"],
        "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if system:
        out["system"] = _system_value(system)
    if stream:
        out["stream"] = True
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)
    for name in ("top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(t) for t in tools]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice:
            out["tool_choice"] = choice
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    return out


def _split_messages(messages: list[Json]) -> tuple[list[Json], list[Json]]:
    """Return (system text blocks, alternating user/assistant turns of content blocks)."""
    system: list[Json] = []
    turns: list[Json] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), f"messages[{i}]"))
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), f"messages[{i}]")
        elif role == "assistant":
            blocks = _assistant_blocks(message, f"messages[{i}]")
        elif role == "tool":
            blocks, role = [_tool_result(message, f"messages[{i}]")], "user"
        else:
            raise BadRequest(
                f"messages[{i}]: role {role!r} is not supported by Anthropic; use tools",
                code="unsupported_role",
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _text_blocks(content: Any, where: str) -> list[Json]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Json] = []
    for part in content:
        kind = part.get("type")
        if kind not in ("text", "refusal"):
            raise BadRequest(
                f"{where}: a {kind!r} part is not allowed here", code="unsupported_content"
            )
        text = part.get("text") or part.get("refusal") or ""
        if text:
            block: Json = {"type": "text", "text": text}
            if part.get("cache_control"):
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
    return blocks


def _user_blocks(content: Any, where: str) -> list[Json]:
    if not isinstance(content, list):
        return _text_blocks(content, where)
    blocks: list[Json] = []
    for part in content:
        if part.get("type") == "image_url":
            blocks.append(_image_block(part.get("image_url") or {}, where))
        else:
            blocks.extend(_text_blocks([part], where))
    return blocks


def _image_block(image: Json, where: str) -> Json:
    url = str(image.get("url") or "")
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or media_type not in _IMAGE_TYPES:
            raise BadRequest(
                f"{where}: images must be base64 JPEG, PNG, GIF or WebP for Anthropic",
                code="unsupported_content",
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise BadRequest(
        f"{where}: image_url must be a data: or http(s) URL", code="unsupported_content"
    )


def _assistant_blocks(message: Json, where: str) -> list[Json]:
    blocks = _text_blocks(message.get("content"), where)
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        raw = function.get("arguments") or "{}"
        try:
            arguments = orjson.loads(raw)
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise BadRequest(
                f"{where}: tool call {call.get('id')!r} arguments are not a JSON object",
                code="invalid_tool_arguments",
            )
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": arguments,
            }
        )
    return blocks


def _tool_result(message: Json, where: str) -> Json:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(b["text"] for b in _text_blocks(content, where))
    result: Json = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if content:  # an empty result is sent without content rather than as an empty text
        result["content"] = content
    return result


def _format_instruction(fmt: Json | None) -> list[Json]:
    kind = (fmt or {}).get("type")
    if kind == "json_object":
        text = "Reply with a single JSON object only: no prose, no code fences."
    elif kind == "json_schema":
        schema = orjson.dumps((fmt or {}).get("json_schema", {}).get("schema")).decode()
        text = (
            "Reply with a single JSON value only (no prose, no code fences) that "
            f"conforms to this JSON Schema:\n{schema}"
        )
    else:
        return []
    return [{"type": "text", "text": text}]


def _system_value(blocks: list[Json]) -> str | list[Json]:
    # A plain string is the common form; blocks are needed only to carry cache_control.
    if any("cache_control" in b for b in blocks):
        return blocks
    return "\n\n".join(b["text"] for b in blocks)


def _tool(tool: Json) -> Json:
    if tool.get("type", "function") != "function":
        raise BadRequest(
            f"tool type {tool.get('type')!r} is not supported by Anthropic", code="unsupported_tool"
        )
    function = tool.get("function") or {}
    out: Json = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> Json | None:
    if isinstance(choice, str):
        out: Json = {"type": _TOOL_CHOICES.get(choice, "auto")}
    elif isinstance(choice, dict):
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        out = {"type": "auto"} if parallel is False else {}
    if parallel is False and out.get("type") in ("auto", "any", "tool"):
        out["disable_parallel_tool_use"] = True
    return out or None


# -- response -------------------------------------------------------------------------------


def from_messages_response(data: Json) -> Json:
    """Translate a Messages API reply into an OpenAI ``chat.completion`` dict."""
    texts: list[str] = []
    tool_calls: list[Json] = []
    for block in data["content"]:
        if block.get("type") == "text":
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            tool_calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: Json = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": data.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(data.get("stop_reason")),
            }
        ],
        "usage": usage_from(data.get("usage") or {}),
    }


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "", "stop")


def usage_from(usage: Json) -> Json:
    """OpenAI usage: cache reads and writes are prompt tokens too, as OpenAI counts them."""
    fresh = int(usage.get("input_tokens") or 0)
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = fresh + read + written
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        # cache_creation_tokens is ours, not OpenAI's: cache writes are priced above input.
        "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": written},
    }
