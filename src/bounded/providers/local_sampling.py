"""The embedded model's sampling loop: tokens out of llama.cpp, cut at ``stop`` strings.

Split from :mod:`.local` so that module keeps loading, queueing and the OpenAI mapping; this
one is what happens to each token once generation has started. :func:`sample` runs in the
entry's worker thread and calls ``on_text`` there with each piece of text the client may see
(text that may be the start of a stop string is held back until it is known not to be).
"""

from __future__ import annotations

import codecs
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bounded.providers.local_wire import Options, Outcome


@dataclass(slots=True)
class Loaded:
    """A loaded model: the ``Llama`` object, its chat template, and its end-of-generation test."""

    llm: Any
    render: Callable[..., Any]
    is_eog: Callable[[int], bool]


def sample(
    model: Loaded,
    prompt: list[int],
    limit: int,
    opts: Options,
    stop: threading.Event,
    on_text: Callable[[str], None] | None,
) -> Outcome:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stops = StopText(opts.stop)
    parts: list[str] = []
    count, finish = 0, "length"

    def out(text: str) -> None:
        if text:
            parts.append(text)
            if on_text:
                on_text(text)

    tokens = model.llm.generate(prompt, grammar=grammar(opts.schema), **opts.sampling)
    try:
        for token in tokens:
            if stop.is_set() or model.is_eog(token):
                finish = "stop"
                break
            count += 1
            text, hit = stops.feed(decoder.decode(model.llm.detokenize([token])))
            out(text)
            if hit:
                finish = "stop"
                break
            if count >= limit:
                break
    finally:
        tokens.close()
    if not stops.hit:
        out(stops.flush() + decoder.decode(b"", final=True))
    return Outcome("".join(parts), finish, len(prompt), count)


class StopText:
    """OpenAI ``stop`` strings: cut at the first one; hold back text that may begin one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.held = ""
        self.hit = False

    def feed(self, text: str) -> tuple[str, bool]:
        buf = self.held + text
        found = [buf.find(s) for s in self.stops if s in buf]
        if found:
            self.held, self.hit = "", True
            return buf[: min(found)], True
        keep = max(
            (k for s in self.stops for k in range(1, len(s)) if buf.endswith(s[:k])), default=0
        )
        self.held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


def grammar(schema: dict[str, Any] | None) -> Any:
    if schema is None:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception:  # the converter rejects some features (e.g. remote $ref): any object
        return LlamaGrammar.from_json_schema('{"type": "object"}', verbose=False)
