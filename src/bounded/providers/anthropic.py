"""The Anthropic Messages API (``POST {base_url}/v1/messages``) behind the OpenAI seam.

    provider = AnthropicProvider("claude", ProviderConfig(kind="anthropic", api_key="sk-ant-..."))
    completion = await provider.complete(ChatRequest(openai_body, timeout_s=30))

Bodies are translated by :mod:`~bounded.providers.anthropic_translate` and stream events by
:mod:`~bounded.providers.anthropic_stream`; this module is the transport: one connection pool
per provider entry (:mod:`~bounded.providers.transport`), and the one place where Anthropic
errors (HTTP statuses, ``error`` events inside a 200 stream, connection failures) become
bounded errors:

    429 rate_limit_error                       -> RateLimited (retry-after honoured)
    500 api_error, 502, 503, 529 overloaded    -> Unavailable
    408, 504, client timeouts                  -> Timeout
    400 "prompt is too long"                   -> ContextTooLong
    other 400, 413 request_too_large, 422      -> BadRequest
    401, 403, 404 (deployment misconfigured)   -> Unavailable: another deployment may answer
    connection errors, malformed replies       -> Unavailable
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from bounded.config.schema import ProviderConfig
from bounded.errors import (
    BadRequest,
    ContextTooLong,
    ProviderError,
    RateLimited,
    Timeout,
    Unavailable,
)
from bounded.providers.anthropic_stream import StreamTranslator
from bounded.providers.anthropic_translate import from_messages_response, to_messages_request
from bounded.providers.base import ChatRequest, EmbeddingResult, Json, encode_request
from bounded.providers.openai import parse_retry_after
from bounded.providers.sse import iter_sse_events
from bounded.providers.transport import Upstream

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"

# The status each documented error type comes with; an ``error`` event inside a 200 stream
# carries only the type, and is mapped as if it had arrived with this status.
STATUS_BY_ERROR_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
_CONTEXT_MARKERS = ("prompt is too long", "exceed context limit", "context window")


def error_from_response(status: int, body: bytes, headers: Any, deployment: str) -> ProviderError:
    """Map an Anthropic non-2xx reply (``{"type": "error", "error": {...}}``) to one error."""
    message, error_type = _error_text(body)
    label = f"{status} {error_type}" if error_type else str(status)
    detail = f"anthropic {label}: {message}" if message else f"anthropic returned {label}"
    kw: dict[str, Any] = {"deployment": deployment, "upstream_status": status}
    if status == 429:
        return RateLimited(detail, retry_after=parse_retry_after(headers), **kw)
    if status in (408, 504):
        return Timeout(detail, **kw)
    if status in (400, 413, 422):
        if any(marker in message.lower() for marker in _CONTEXT_MARKERS):
            return ContextTooLong(detail, **kw)
        return BadRequest(detail, **kw)
    # 5xx and 529 are Anthropic's trouble; 401/403/404 mean this deployment is misconfigured.
    # Either way another deployment may still answer.
    return Unavailable(detail, **kw)


def error_from_event(event: Json, deployment: str) -> ProviderError:
    """An ``error`` event that arrived inside a 200 stream."""
    error_type = str((event.get("error") or {}).get("type") or "")
    status = STATUS_BY_ERROR_TYPE.get(error_type, 502)
    return error_from_response(status, orjson.dumps(event), {}, deployment)


def _error_text(body: bytes) -> tuple[str, str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace").strip(), ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "")[:500], str(error.get("type") or "")
    return str(data)[:300], ""


def _translate(exc: BaseException, deployment: str) -> ProviderError:
    # A timeout is also an OSError: test for timeouts first.
    if isinstance(exc, TimeoutError):
        return Timeout(f"anthropic timed out: {exc or 'no reply in time'}", deployment=deployment)
    if isinstance(exc, ConnectionError | OSError):
        return Unavailable(f"anthropic connection failed: {exc}", deployment=deployment)
    return Unavailable(f"anthropic call failed: {type(exc).__name__}: {exc}", deployment=deployment)


class AnthropicProvider:
    """Talks to ``{base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``.

    ``base_url`` may be given with or without the trailing ``/v1``.
    """

    def __init__(self, name: str, config: ProviderConfig):
        self.name = name
        base = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.url = (base if base.endswith("/v1") else base + "/v1") + "/messages"
        headers = {
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            **config.headers,
        }
        if config.api_key:
            headers["x-api-key"] = config.api_key
        parts = urlsplit(self.url)
        self._path = parts.path
        self._upstream = Upstream(
            f"{parts.scheme}://{parts.netloc}",
            max_connections=config.max_connections,
            headers=headers,
        )

    async def aclose(self) -> None:
        await self._upstream.aclose()

    async def complete(self, request: ChatRequest) -> Json:
        deployment = str(request.body.get("model"))
        payload = encode_request(to_messages_request(request.body, stream=False))
        try:
            resp = await self._upstream.post(
                self._path, payload, headers=request.headers, timeout_s=request.timeout_s
            )
            async with resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise error_from_response(resp.status, raw, resp.headers, deployment)
        except ProviderError:
            raise
        except Exception as exc:
            raise _translate(exc, deployment) from exc
        try:
            data = orjson.loads(raw)
            if isinstance(data, dict) and data.get("type") == "error":
                raise error_from_event(data, deployment)
            return from_messages_response(data)
        except ProviderError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise Unavailable("anthropic reply is malformed", deployment=deployment) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        deployment = str(request.body.get("model"))
        payload = encode_request(to_messages_request(request.body, stream=True))
        try:
            # The attempt timeout bounds connecting and each wait for the next bytes.
            resp = await self._upstream.post(
                self._path, payload, headers=request.headers, read_timeout_s=request.timeout_s
            )
        except Exception as exc:
            raise _translate(exc, deployment) from exc
        async with resp:
            if resp.status >= 400:
                raise error_from_response(resp.status, await resp.read(), resp.headers, deployment)
            translator = StreamTranslator(deployment)
            try:
                async for name, data in iter_sse_events(resp.lines()):
                    event = _parse_event(name, data, deployment)
                    if event.get("type") == "error":
                        raise error_from_event(event, deployment)
                    for chunk in translator.feed(event):
                        yield chunk
                    if translator.done:
                        return
            except ProviderError:
                raise
            except Exception as exc:
                raise _translate(exc, deployment) from exc
        raise Unavailable("anthropic stream ended before message_stop", deployment=deployment)

    async def embed(
        self,
        texts: list[str] | list[list[int]],
        model: str,
        timeout_s: float,
        *,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        raise BadRequest(
            "Anthropic has no embeddings API", deployment=model, code="embeddings_not_supported"
        )


def _parse_event(name: bytes, data: bytes, deployment: str) -> Json:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise Unavailable("anthropic stream sent malformed JSON", deployment=deployment) from None
    if not isinstance(event, dict):
        raise Unavailable("anthropic stream sent a non-object event", deployment=deployment)
    # The data's own "type" is authoritative; the SSE event name is the fallback.
    event.setdefault("type", name.decode("utf-8", "replace"))
    return event
