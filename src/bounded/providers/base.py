"""The one provider seam. Everything else (routing, fallback, ledger) wraps it.

The lingua franca is the OpenAI wire format as plain dicts: a request body goes in (with
``model`` already set to the provider's own model name), a ``chat.completion`` dict or a stream
of ``chat.completion.chunk`` dicts comes out. Unknown request fields pass through untouched;
providers that speak another protocol (anthropic, local) translate at their edge.

Providers raise only the typed errors of :mod:`bounded.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from bounded.errors import InvalidRequest

Json = dict[str, Any]


def encode_request(body: Json) -> bytes:
    """The request as bytes for the upstream, made *before* anything is sent.

    Failing here is never the deployment's fault: it happens before the upstream saw a
    byte, so it is raised as the client's error, outside the code that turns transport
    failures into provider errors (which count against breakers and fall back).
    """
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise InvalidRequest(
            f"request cannot be encoded for the upstream: {exc}", code="unencodable_request"
        ) from None


@dataclass(slots=True)
class ChatRequest:
    """One attempt's request: the OpenAI body and how long the attempt may take."""

    body: Json
    timeout_s: float
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EmbeddingResult:
    vectors: list[list[float]]
    prompt_tokens: int


@runtime_checkable
class Provider(Protocol):
    """A provider kind bound to one configured provider entry (URL, key, pool)."""

    name: str

    async def complete(self, request: ChatRequest) -> Json:
        """Return an OpenAI ``chat.completion`` dict."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        """Yield OpenAI ``chat.completion.chunk`` dicts; the last may carry ``usage``."""
        ...

    async def embed(
        self,
        texts: list[str] | list[list[int]],
        model: str,
        timeout_s: float,
        *,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        """Vectors for ``texts`` (token-id arrays only where ``accepts_token_ids``)."""
        ...

    async def aclose(self) -> None: ...
