"""Token counts before a call: what budgets reserve and rate limits charge.

Counts use OpenAI's BPE encodings from ``bpe-openai``, whose vocabularies ship inside the
wheel (tiktoken downloads them at run time, which fails offline). They are exact for
OpenAI models. For Anthropic, Gemini and local models, o200k_base is an *estimate*: good
enough to reserve budget and admit requests, never a substitute for the usage the
provider reports, which is what the ledger settles on. A model with its own tokenizer
(the embedded llama.cpp model) can ``register`` it.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import json
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bounded.economics.token_memo import Counter, remembered

O200K = "o200k_base"
CL100K = "cl100k_base"

# OpenAI's chat format: every message is wrapped as <|start|>{role}<|message|>{content}
# <|end|> (3 tokens beyond role and content), a name costs one more token, and every
# reply is primed with <|start|>assistant<|message|> (3 tokens). These are the figures
# from OpenAI's cookbook "How to count tokens with tiktoken", which match the API's
# reported prompt_tokens for gpt-3.5/4/4o.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
# A low-detail image costs a flat 85 tokens on gpt-4o; high detail costs 85 plus 170 per
# 512px tile, which needs the image's size we don't have before the call. 85 is the
# floor, so an image-heavy request is under-reserved; the settled usage corrects it.
IMAGE_TOKENS = 85

# Models on cl100k_base: gpt-4 (not 4o/4.1/4.5), gpt-3.5 (Azure spells it gpt-35) and
# the embedding models. Everything else, including every non-OpenAI model, uses o200k.
_CL100K_MODELS = re.compile(
    r"^(?:gpt-4(?:-|$)|gpt-3\.5|gpt-35|text-embedding-|davinci-002|babbage-002)"
)

_load_lock = threading.Lock()
_encoders: dict[str, Counter] = {}


@functools.lru_cache(maxsize=4096)
def encoding_for(model: str) -> str:
    """The encoding used to count ``model``'s tokens (exact or estimated, see module doc)."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    return CL100K if _CL100K_MODELS.match(name) else O200K


def is_loaded(encoding: str) -> bool:
    return encoding in _encoders


def _encoder(encoding: str) -> Counter:
    """The counter for ``encoding``, loaded on first use and shared by the process.

    Loading takes ~0.15 s per encoding (and ~50 MB for o200k_base), so it must not
    happen at import time or twice; the lock makes concurrent first requests wait for
    a single load.
    """
    found = _encoders.get(encoding)
    if found is not None:
        return found
    with _load_lock:
        found = _encoders.get(encoding)
        if found is None:
            found = _load(encoding)
            _encoders[encoding] = found
        return found


def _load(encoding: str) -> Counter:
    try:
        count: Counter = _native_bindings().tokenizer_for_encoding(encoding).count
    except Exception:  # any failure of the private path: use the public one
        count = _public_counter(encoding)

    def safe_count(text: str) -> int:
        try:
            return count(text)
        except UnicodeEncodeError:
            # Lone surrogates (from badly decoded JSON) are not valid UTF-8; count them
            # as U+FFFD, which is what they become on the wire.
            fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return count(fixed)

    return safe_count


def _native_bindings() -> Any:
    """bpe-openai's Rust extension, loaded without running the package's ``__init__``.

    Importing ``bpe_openai`` parses both vocabularies in Python (0.8 s and ~60 MB here)
    just to build metadata we don't use, and warns about a deprecated importlib API.
    The Rust tokenizers carry their own vocabularies, so we load the extension module
    by path (0.15 s for o200k_base). Its ``count()`` also skips the token list and the
    wrapper's 200k-token / 1M-character limits, which would reject long prompts.
    """
    name = "bpe_openai._bindings"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("bpe_openai")  # finds, does not import
    if package is None or not package.submodule_search_locations:
        raise ImportError("bpe-openai is not installed")
    for folder in package.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_bindings" + suffix)
            if os.path.isfile(path):
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    continue
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                # Registered so a later ``import bpe_openai`` reuses it, not re-inits it.
                sys.modules[name] = module
                return module
    raise ImportError("bpe-openai's native extension was not found")


def _public_counter(encoding: str) -> Counter:
    """The slower, public tiktoken-like API: the fallback if the layout above changes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai
    except ImportError as exc:
        raise RuntimeError(
            "token counting needs the 'bpe-openai' package (pip install bpe-openai)"
        ) from exc
    enc = bpe_openai.get_encoding(encoding)

    def count(text: str) -> int:
        return len(enc.encode_ordinary(text))

    return count


class TokenCounter:
    """Counts prompt tokens per model; thread-safe, encodings loaded lazily and once.

    For OpenAI models the counts are exact (o200k_base for gpt-4o, gpt-4.1, o-series,
    gpt-5; cl100k_base for gpt-4, gpt-3.5-turbo, text-embedding-3). For Anthropic,
    Gemini and local models they are an o200k_base estimate used for budget reservations
    and rate limits, unless a model's own tokenizer is registered with ``register``.
    """

    def __init__(self) -> None:
        self._custom: dict[str, Counter] = {}

    def register(self, model: str, fn: Callable[[str], int]) -> None:
        """Count ``model``'s text with ``fn`` (e.g. the local llama.cpp ``tokenize``)."""
        # A plain dict assignment is atomic under the GIL; readers never see a torn state.
        self._custom[model] = fn

    def warm(self, encodings: Sequence[str] = (O200K, CL100K)) -> None:
        """Load encodings now (at start-up) so the first request doesn't pay for it."""
        for encoding in encodings:
            _encoder(encoding)

    def counter_for(self, model: str) -> Counter:
        """The function that counts ``model``'s text tokens."""
        custom = self._custom.get(model)
        if custom is not None:
            return custom
        return _encoder(encoding_for(model))

    def count_text(self, text: str, model: str) -> int:
        """Tokens in ``text`` as ``model`` would see it (special tokens count as text)."""
        if not text:
            return 0
        return self.counter_for(model)(text)

    def loaded_counter(self, model: str) -> Counter | None:
        """``counter_for(model)`` when it is ready now; None when its encoding must load
        first (the request path then loads it in a thread, not on the loop)."""
        custom = self._custom.get(model)
        if custom is not None:
            return custom
        return _encoders.get(encoding_for(model))

    def count_messages(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        """Prompt tokens of a chat request, with OpenAI's per-message overhead (see
        ``messages_tokens``), plus ``count_tools(tools)`` when given."""
        total = messages_tokens(self.counter_for(model), messages)
        if tools:
            total += self.count_tools(tools, model)
        return total

    def count_tools(self, tools: Sequence[Mapping[str, Any]], model: str) -> int:
        """Tokens of the tool definitions: the compact JSON of each function.

        OpenAI renders tools into the prompt in its own (undocumented) format; counting
        the JSON over-estimates it a little, which is the safe side for a reservation.
        """
        # A feature sends the same definitions on every request: counted once each.
        count = remembered(self.counter_for(model))
        total = 0
        for tool in tools:
            # {"type": "function", "function": {...}}, or a bare function definition.
            function = tool.get("function", tool)
            total += count(json.dumps(function, separators=(",", ":"), ensure_ascii=False))
        return total


def messages_tokens(fresh: Counter, messages: Sequence[Mapping[str, Any]]) -> int:
    """Prompt tokens of a chat request's messages, with OpenAI's per-message overhead.

    3 tokens per message plus its role, content, ``tool_call_id`` and tool calls;
    +1 per ``name``; +3 to prime the reply. Content may be a string or a list of parts:
    text parts are counted, image parts cost ``IMAGE_TOKENS`` each, other parts (audio,
    files) are not estimated.

    Every message but the last was sent before (the chat's history) or is the feature's own
    (its system prompt), so their counts are remembered by content (``token_memo``); the last
    one, the new message, is counted with ``fresh`` and not kept.
    """
    total = REPLY_PRIMING_TOKENS
    last = len(messages) - 1
    earlier = remembered(fresh) if last > 0 else fresh
    for i, message in enumerate(messages):
        count = earlier if i < last else fresh
        role = message.get("role")
        content = message.get("content")
        total += TOKENS_PER_MESSAGE + _role_tokens(count, role)
        if isinstance(content, str):
            total += count(content) if content else 0
        else:
            total += _count_content(count, content)
        if len(message) > ("role" in message) + ("content" in message):
            # Most messages hold only a role and a content: the rest is looked up then.
            name = message.get("name")
            if isinstance(name, str):
                total += count(name) + TOKENS_PER_NAME
            total += _count_str(count, message.get("tool_call_id"))
            total += _count_tool_calls(count, message.get("tool_calls"))
    return total


# Tokens of the usual roles, per counter: a role is counted on every message of every
# request, and it is nearly always one of these.
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_role_counts: dict[tuple[Counter, str], int] = {}


def _role_tokens(count: Counter, role: object) -> int:
    if not isinstance(role, str) or not role:
        return 0
    if role not in _ROLES:
        return count(role)
    found = _role_counts.get((count, role))
    if found is None:
        found = _role_counts[(count, role)] = count(role)
    return found


def _count_str(count: Counter, value: object) -> int:
    return count(value) if isinstance(value, str) and value else 0


def _count_content(count: Counter, content: object) -> int:
    if isinstance(content, str):
        return count(content) if content else 0
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in ("image_url", "input_image", "image"):
            total += IMAGE_TOKENS
        else:
            # "text" parts, and an assistant's "refusal" parts, are plain text.
            total += _count_str(count, part.get("text")) + _count_str(count, part.get("refusal"))
    return total


def _count_tool_calls(count: Counter, tool_calls: object) -> int:
    if not isinstance(tool_calls, list):
        return 0
    total = 0
    for call in tool_calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            total += _count_str(count, function.get("name"))
            total += _count_str(count, function.get("arguments"))
    return total


# Ordinary tokens of each encoding: ids at or past these are special tokens or gaps, and
# bpe-openai's decoder panics or crashes the process on them, so they are refused first.
_VOCABULARY = {CL100K: 100_256, O200K: 199_998}


def decode_tokens(ids: Sequence[int], encoding: str) -> str:
    """Text of a token-id array; ``ValueError`` for an id outside the encoding."""
    size = _VOCABULARY[encoding]
    if any(not 0 <= i < size for i in ids):
        raise ValueError(f"token ids must be from 0 to {size - 1} in {encoding}")
    _encoder(encoding)  # loads the native extension once, under the load lock
    decoded: str = _native_bindings().tokenizer_for_encoding(encoding).decode(list(ids))
    return decoded
