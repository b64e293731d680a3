"""Any OpenAI-compatible API: OpenAI, vLLM, Ollama, llama.cpp server, LM Studio.

Bodies pass through as they came (unknown fields included). One connection pool per provider
entry (:mod:`bounded.providers.transport`) keeps connections alive. HTTP and connection
failures become bounded errors in :func:`error_from_response` and :func:`_translate` only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from bounded.config.schema import ProviderConfig
from bounded.errors import (
    BadRequest,
    ContentRefused,
    ContextTooLong,
    ProviderError,
    RateLimited,
    Timeout,
    Unavailable,
)
from bounded.providers.base import ChatRequest, EmbeddingResult, Json, encode_request
from bounded.providers.sse import iter_sse_data
from bounded.providers.transport import Response, Upstream

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "too many tokens",
    "prompt is too long",
)
_REFUSAL_MARKERS = ("content_filter", "content_policy", "content management policy", "safety")


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds form); None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def error_from_response(status: int, body: bytes, headers: Any, deployment: str) -> ProviderError:
    """Map an upstream non-2xx reply to one typed error."""
    message, code = _error_text(body)
    lowered = f"{code} {message}".lower()
    detail = f"upstream {status}: {message}" if message else f"upstream returned {status}"
    kw: dict[str, Any] = {"deployment": deployment, "upstream_status": status}
    if status == 429:
        return RateLimited(detail, retry_after=parse_retry_after(headers), **kw)
    if status in (408, 504):
        return Timeout(detail, **kw)
    if status in (400, 413, 422):
        if any(m in lowered for m in _CONTEXT_MARKERS):
            return ContextTooLong(detail, **kw)
        if any(m in lowered for m in _REFUSAL_MARKERS):
            return ContentRefused(detail, **kw)
        return BadRequest(detail, **kw)
    # 401/403/404 from upstream mean this deployment is misconfigured; another may still answer.
    return Unavailable(detail, **kw)


def error_from_payload(payload: Json, deployment: str) -> ProviderError:
    """An ``{"error": ...}`` object that arrived inside a 200 stream."""
    return error_from_response(
        _payload_status(payload.get("error")), orjson.dumps(payload), {}, deployment
    )


def _payload_status(err: Any) -> int:
    """The HTTP status an in-stream error stands for: given, or read from its code and text.

    Servers put a number in ``status`` or ``code``, or only a string code; without this a
    rate limit or an over-long prompt reported mid-stream would pass for an outage and
    fall back (or not) by the wrong rule.
    """
    if not isinstance(err, dict):
        return 502
    for key in ("status", "code"):
        value = str(err.get(key))
        if value.isdigit() and 400 <= int(value) < 600:
            return int(value)
    text = f"{err.get('code')} {err.get('type')} {err.get('message')}".lower()
    if "rate_limit" in text or "rate limit" in text:
        return 429
    if any(m in text for m in _CONTEXT_MARKERS + _REFUSAL_MARKERS):
        return 400
    return 502


def _error_text(body: bytes) -> tuple[str, str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace").strip(), ""
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err)[:500], str(err.get("code") or err.get("type") or "")
    return str(err)[:500], ""


class OpenAIProvider:
    """Talks to ``{base_url}/chat/completions`` and ``{base_url}/embeddings``."""

    # OpenAI's API takes arrays of token ids as embedding input; pass them on as sent.
    accepts_token_ids = True

    def __init__(self, name: str, config: ProviderConfig):
        self.name = name
        self.base_url = (config.base_url or "https://api.openai.com/v1").rstrip("/")
        headers = {"content-type": "application/json", **config.headers}
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        self._upstream = Upstream(
            self.base_url, max_connections=config.max_connections, headers=headers
        )

    async def aclose(self) -> None:
        await self._upstream.aclose()

    async def _post(
        self,
        path: str,
        data: bytes,
        *,
        timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return await self._upstream.post(
            path, data, headers=headers, timeout_s=timeout_s, read_timeout_s=read_timeout_s
        )

    async def complete(self, request: ChatRequest) -> Json:
        deployment = str(request.body.get("model"))
        data = encode_request(request.body)
        try:
            # The router's own timer is exact; this deadline is a backstop.
            resp = await self._post(
                "/chat/completions", data, timeout_s=request.timeout_s, headers=request.headers
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
            reply = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Unavailable("upstream sent malformed JSON", deployment=deployment) from None
        if not isinstance(reply, dict) or "choices" not in reply:
            if isinstance(reply, dict) and "error" in reply:
                raise error_from_payload(reply, deployment)
            raise Unavailable("upstream reply has no choices", deployment=deployment)
        return reply

    async def stream(self, request: ChatRequest) -> AsyncIterator[Json]:
        deployment = str(request.body.get("model"))
        data = encode_request({**request.body, "stream": True})
        try:
            # The attempt timeout bounds connecting and each wait for the next bytes.
            resp = await self._post(
                "/chat/completions",
                data,
                read_timeout_s=request.timeout_s,
                headers=request.headers,
            )
        except Exception as exc:
            raise _translate(exc, deployment) from exc
        async with resp:
            if resp.status >= 400:
                raise error_from_response(resp.status, await resp.read(), resp.headers, deployment)
            finished = False
            try:
                async for data in iter_sse_data(resp.lines()):
                    if data == b"[DONE]":
                        return
                    try:
                        chunk = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        raise Unavailable(
                            "upstream stream sent malformed JSON", deployment=deployment
                        ) from None
                    if "error" in chunk and "choices" not in chunk:
                        raise error_from_payload(chunk, deployment)
                    if any(c.get("finish_reason") for c in chunk.get("choices") or ()):
                        finished = True
                    yield chunk
            except ProviderError:
                raise
            except Exception as exc:
                raise _translate(exc, deployment) from exc
            if not finished:
                raise Unavailable("upstream stream ended before it finished", deployment=deployment)

    async def embed(
        self,
        texts: list[str] | list[list[int]],
        model: str,
        timeout_s: float,
        *,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        body: Json = {"model": model, "input": texts}
        if dimensions is not None:
            body["dimensions"] = dimensions
        data = encode_request(body)
        try:
            resp = await self._post("/embeddings", data, timeout_s=timeout_s)
            async with resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise error_from_response(resp.status, raw, resp.headers, model)
            reply = orjson.loads(raw)
            vectors = [
                item["embedding"] for item in sorted(reply["data"], key=lambda d: d["index"])
            ]
            tokens = int((reply.get("usage") or {}).get("prompt_tokens") or 0)
        except ProviderError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise Unavailable("upstream embeddings reply is malformed", deployment=model) from exc
        except Exception as exc:
            raise _translate(exc, model) from exc
        return EmbeddingResult(vectors=vectors, prompt_tokens=tokens)


def _translate(exc: BaseException, deployment: str) -> ProviderError:
    if isinstance(exc, TimeoutError):  # UpstreamTimeout too
        # TimeoutError usually has no text; an empty "upstream timed out: " helps nobody.
        return Timeout(
            f"upstream timed out: {str(exc) or 'no reply in time'}", deployment=deployment
        )
    if isinstance(exc, ConnectionError | OSError):
        return Unavailable(f"upstream connection failed: {exc}", deployment=deployment)
    return Unavailable(f"upstream call failed: {type(exc).__name__}: {exc}", deployment=deployment)
