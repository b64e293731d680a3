"""The OpenAI wire format at the local provider's edge: the request body in, replies out.

:func:`parse_body` checks a ``chat.completions`` body on the event loop (bad input fails before
it queues for the model) and reduces it to :class:`Options`: plain-text messages the model's
chat template can render, llama.cpp sampling arguments, a JSON schema to constrain the output
(``response_format`` or a forced tool call) and the forced function's name.
:func:`completion_body` and :class:`Chunks` turn an :class:`Outcome` back into a
``chat.completion`` dict or ``chat.completion.chunk`` dicts, tool calls included.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bounded.errors import BadRequest
from bounded.providers.base import Json

# A body without max_tokens gets this many at most. llama.cpp would otherwise generate until
# the context is full, and a 135M model that loses its way repeats itself until then: ~2,000
# tokens, half a minute or more on two cores, past a route's timeout. A short answer stops well
# before (finish_reason "stop"); ModelConfig.max_output_tokens in bounded.yaml should say the
# same, so budgets reserve what the provider can actually spend.
DEFAULT_MAX_TOKENS = 256
# llama.cpp's chat defaults, not OpenAI's temperature 1.0: a 135M model rambles when hot.
SAMPLING = {"temp": 0.2, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1}
# OpenAI: a function that omits ``parameters`` takes none, so its arguments are ``{}``.
_NO_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}
# OpenAI field -> (llama.cpp argument, lowest, highest)
_NUMBERS = {
    "temperature": ("temp", 0, 2),
    "top_p": ("top_p", 0, 1),
    "frequency_penalty": ("frequency_penalty", -2, 2),
    "presence_penalty": ("presence_penalty", -2, 2),
}


@dataclass(slots=True)
class Options:
    """The OpenAI body, checked on the event loop and reduced to what llama.cpp needs."""

    model: str
    messages: list[dict[str, str]]
    max_tokens: int = DEFAULT_MAX_TOKENS  # before clamping to the room left in the context
    sampling: dict[str, Any] = field(default_factory=lambda: dict(SAMPLING))
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    schema: dict[str, Any] | None = None  # constrain the output to this JSON schema
    tool: str | None = None  # the forced function's name
    include_usage: bool = False


@dataclass(slots=True)
class Outcome:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    def usage(self) -> Json:
        total = self.prompt_tokens + self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": total,
        }


def parse_body(body: Json) -> Options:
    """Check the request on the event loop, so bad input fails before it waits for the model."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    if body.get("n") not in (None, 1):
        raise BadRequest("the local provider returns one choice; 'n' must be 1")
    if body.get("logprobs"):
        raise BadRequest("the local provider does not return logprobs")
    opts = Options(model=str(body.get("model") or "local"), messages=_render(messages))
    opts.max_tokens = (
        _number(body, "max_completion_tokens", 1)
        or _number(body, "max_tokens", 1)
        or DEFAULT_MAX_TOKENS
    )
    for key, (arg, low, high) in _NUMBERS.items():
        value = _number(body, key, low, high, kind=float)
        if value is not None:
            opts.sampling[arg] = value
    stop = body.get("stop")
    opts.stop = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(opts.stop, list) or not all(isinstance(s, str) for s in opts.stop):
        raise BadRequest("'stop' must be a string or a list of strings")
    seed = _number(body, "seed")
    opts.seed = None if seed is None else seed & 0xFFFFFFFF  # llama.cpp seeds are uint32
    opts.schema = _response_schema(body.get("response_format"))
    tool = _forced_tool(body.get("tools"), body.get("tool_choice"))
    if tool is not None:
        opts.tool, opts.schema = tool.get("name"), tool.get("parameters") or _NO_PARAMETERS
        _add_tool_hint(opts.messages, tool, opts.schema)
    opts.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return opts


def _number(
    body: Json, key: str, low: float | None = None, high: float | None = None, kind: type = int
) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if kind is int else int | float):
        raise BadRequest(f"'{key}' must be {'an integer' if kind is int else 'a number'}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadRequest(f"'{key}' must be between {low} and {high}")
    return kind(value)


def _render(messages: list[Any]) -> list[dict[str, str]]:
    """OpenAI messages as plain role/content text the model's chat template can render."""
    out: list[dict[str, str]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, to label tool results
    for m in messages:
        if not isinstance(m, dict):
            raise BadRequest("each message must be an object")
        role, text = m.get("role"), _text(m.get("content"))
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text})
        elif role == "user":
            out.append({"role": "user", "content": text})
        elif role == "assistant":
            lines = [text] if text else []
            for call in m.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict):
                    raise BadRequest("each tool call must be an object with a 'function'")
                names[str(call.get("id"))] = str(fn.get("name"))
                lines.append(f"I called {fn.get('name')} with {fn.get('arguments', '{}')}.")
            out.append({"role": "assistant", "content": "\n".join(lines)})
        elif role in ("tool", "function"):
            name = m.get("name") or names.get(str(m.get("tool_call_id")))
            label = f"The {name} tool" if name else "The tool"
            out.append({"role": "user", "content": f"{label} returned: {text}"})
        else:
            raise BadRequest(f"unknown message role {role!r}")
    return out


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                raise BadRequest(f"the local model reads text only, not {kind!r} content parts")
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    raise BadRequest("message content must be a string or a list of text parts")


def _response_schema(fmt: Any) -> dict[str, Any] | None:
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if not isinstance(fmt, dict):
        raise BadRequest("'response_format' must be an object")
    if fmt.get("type") == "json_object":
        return {"type": "object"}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("'response_format.json_schema.schema' must be an object")
        return schema
    raise BadRequest(f"unsupported response_format type {fmt.get('type')!r}")


def _forced_tool(tools: Any, choice: Any) -> dict[str, Any] | None:
    """The function a request forces, or None when the model would have to choose."""
    if not tools or choice in (None, "auto", "none"):
        return None
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be a list")
    functions = {
        t["function"].get("name"): t["function"]
        for t in tools
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    }
    if choice == "required":
        if len(functions) != 1:
            raise BadRequest(
                "with tool_choice 'required' the local model needs exactly one "
                "tool; name the function in tool_choice instead"
            )
        return next(iter(functions.values()))
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in functions:
            raise BadRequest(f"tool_choice names {name!r}, which is not among 'tools'")
        return functions[name]
    raise BadRequest(f"unsupported tool_choice {choice!r}")


def _add_tool_hint(messages: list[dict[str, str]], tool: dict[str, Any], schema: Any) -> None:
    # The grammar guarantees the shape; telling the model what the call is for helps the values.
    about = f" ({tool['description']})" if tool.get("description") else ""
    hint = (
        f"Call the function {tool.get('name')}{about}. Reply with only its arguments as "
        f"JSON matching this schema: {json.dumps(schema)}"
    )
    if messages[0]["role"] == "system":
        messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{hint}"}
    else:
        messages.insert(0, {"role": "system", "content": hint})


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _tool_finish(opts: Options, reason: str) -> str:
    return "tool_calls" if opts.tool and reason == "stop" else reason


def completion_body(opts: Options, out: Outcome) -> Json:
    message: Json = {"role": "assistant", "content": out.text}
    if opts.tool:
        call = {
            "id": _new_id("call_"),
            "type": "function",
            "function": {"name": opts.tool, "arguments": out.text},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": _tool_finish(opts, out.finish_reason),
    }
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": opts.model,
        "choices": [choice],
        "usage": out.usage(),
    }


class Chunks:
    """``chat.completion.chunk`` dicts of one stream (one id, one tool call id)."""

    def __init__(self, opts: Options):
        self.opts, self.id, self.created = opts, _new_id("chatcmpl-"), int(time.time())
        self.call_id: str | None = _new_id("call_") if opts.tool else None

    def make(self, delta: Json, finish: str | None = None) -> Json:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.opts.model,
            "choices": [choice],
        }

    def delta(self, text: str) -> Json:
        if not self.opts.tool:
            return self.make({"content": text})
        call: Json = {"index": 0, "function": {"arguments": text}}
        if self.call_id:  # the first delta of a call names it, as OpenAI's do
            call.update(id=self.call_id, type="function")
            call["function"]["name"] = self.opts.tool
            self.call_id = None
        return self.make({"tool_calls": [call]})

    def finish(self, out: Outcome) -> Json:
        return self.make({}, _tool_finish(self.opts, out.finish_reason))
