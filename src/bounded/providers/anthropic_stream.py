"""Messages API stream events -> OpenAI ``chat.completion.chunk`` dicts, one event at a time.

Anthropic streams typed events (message_start, content_block_start/delta/stop, message_delta,
message_stop, ping, error); OpenAI streams deltas of one choice. Tool calls are numbered by
their own order (OpenAI ``index``), not by the content block index Anthropic uses.
"""

from __future__ import annotations

import time

from bounded.providers.anthropic_translate import finish_reason, usage_from
from bounded.providers.base import Json


class StreamTranslator:
    """Turns Messages stream events, one at a time, into ``chat.completion.chunk`` dicts.

        translator = StreamTranslator(model="claude-sonnet-4-5")
        for chunk in translator.feed(event): ...
        translator.done   # True once message_stop arrived

    ``error`` events are not handled here: the transport maps them to typed errors.
    """

    def __init__(self, model: str):
        self.id = ""
        self.model = model
        self.created = int(time.time())
        self.done = False
        self._finished = False
        self._usage: Json = {}
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool call index
        self._handlers = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
        }

    def feed(self, event: Json) -> list[Json]:
        # ping, content_block_stop and event types added later carry nothing to translate.
        handler = self._handlers.get(str(event.get("type")))
        return handler(event) if handler else []

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _add_usage(self, usage: Json | None) -> None:
        # message_delta repeats some counts as cumulative totals, sometimes as null.
        for key, value in (usage or {}).items():
            if isinstance(value, int):
                self._usage[key] = value

    def _message_start(self, event: Json) -> list[Json]:
        message = event.get("message") or {}
        self.id = str(message.get("id") or self.id)
        self.model = str(message.get("model") or self.model)
        self._add_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, event: Json) -> list[Json]:
        block = event.get("content_block") or {}
        if block.get("type") == "tool_use":
            index = self._tool_index[int(event.get("index", 0))] = len(self._tool_index)
            call = {
                "index": index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _block_delta(self, event: Json) -> list[Json]:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            index = self._tool_index.get(int(event.get("index", 0)))
            if index is None:
                return []
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _message_delta(self, event: Json) -> list[Json]:
        self._add_usage(event.get("usage"))
        self._finished = True
        reason = finish_reason((event.get("delta") or {}).get("stop_reason"))
        return [self._chunk({}, finish=reason)]

    def _message_stop(self, event: Json) -> list[Json]:
        self.done = True
        chunks = [] if self._finished else [self._chunk({}, finish="stop")]
        usage = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_from(self._usage),
        }
        return [*chunks, usage]
