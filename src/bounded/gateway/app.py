"""The ASGI app: OpenAI-compatible endpoints in front of the router.

    gateway = Gateway(config, keys=KeyRepository(conn), config_path=Path("bounded.yaml"))
    app = gateway.app()          # any ASGI server; `bounded serve` uses uvicorn

Every response, errors included, carries ``x-bounded-trace-id``; routed ones also carry
``x-bounded-route`` (the deployment that answered) and ``x-bounded-attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bounded.config.loader import ConfigError, load_config
from bounded.config.schema import BoundedConfig
from bounded.errors import BoundedError, NotFound, PayloadTooLarge
from bounded.gateway.auth import Authenticator, Principal
from bounded.gateway.embeddings import embeddings_response
from bounded.gateway.runtime import Runtime, Target
from bounded.gateway.validate import check_chat, check_embeddings, parse_json_object
from bounded.providers.sse import DONE, encode_event
from bounded.routing.router import RouteTrace
from bounded.store.keys import KeyRepository

log = logging.getLogger("bounded.gateway")

JSON = "application/json"


class Gateway:
    def __init__(
        self,
        config: BoundedConfig,
        *,
        keys: KeyRepository,
        admin_key: str | None = None,
        dev_key: str | None = None,
        config_path: Path | None = None,
        reload_interval_s: float = 1.0,
    ):
        self.runtime = Runtime.build(config)
        self.auth = Authenticator(keys, admin_key, dev_key)
        self.config_path = config_path
        self.reload_interval_s = reload_interval_s
        self.reloads = 0
        self.last_reload_error: str | None = None
        self._mtime = _mtime(config_path)
        self._watcher: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ]
        return Starlette(
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self.config_path is not None and self.runtime.config.server.reload:
            self._watcher = asyncio.create_task(self._watch())
        try:
            yield
        finally:
            if self._watcher is not None:
                self._watcher.cancel()
            await self.runtime.close_when_idle()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval_s)
            mtime = _mtime(self.config_path)
            if mtime != self._mtime:
                self._mtime = mtime
                await self.reload()

    async def reload(self) -> bool:
        """Re-read the config file; on success swap the runtime, else keep the old one."""
        assert self.config_path is not None
        try:
            config = load_config(self.config_path)
            runtime = Runtime.build(config, previous=self.runtime)
        except ConfigError as exc:
            self.last_reload_error = str(exc)
            log.error("config reload rejected, keeping the running config:\n%s", exc)
            return False
        old, self.runtime = self.runtime, runtime
        self.reloads += 1
        self.last_reload_error = None
        log.warning("config reloaded from %s", self.config_path)
        asyncio.create_task(old.close_when_idle(successor=runtime))
        return True

    # -- endpoints ---------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        trace_id = secrets.token_hex(16)
        runtime = self.runtime
        runtime.in_flight += 1
        handed_off = False
        trace = RouteTrace()
        try:
            principal = self._authenticate(request)
            body = parse_json_object(await _read_body(request, runtime))
            check_chat(body)
            target = _resolve(runtime, body["model"], principal)
            upstream = _apply_feature(body, target)
            if body.get("stream"):
                wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                # Always ask upstream for usage: the ledger needs it even when the client
                # does not; the usage-only chunk is dropped again for such clients.
                upstream["stream_options"] = {
                    **(body.get("stream_options") or {}), "include_usage": True
                }
                routed = await runtime.router.stream(target.route, upstream, trace)
                handed_off = True
                return StreamingResponse(
                    self._sse(runtime, routed.chunks, wants_usage),
                    media_type="text/event-stream",
                    headers={**_headers(trace_id, trace), "cache-control": "no-cache"},
                )
            response, _ = await runtime.router.complete(target.route, upstream, trace)
            return Response(orjson.dumps(response), media_type=JSON,
                            headers=_headers(trace_id, trace))
        except BoundedError as exc:
            return _error(exc, trace_id, trace)
        finally:
            if not handed_off:
                _leave(runtime)

    async def _sse(
        self, runtime: Runtime, chunks: AsyncIterator[dict[str, Any]], wants_usage: bool
    ) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                if not wants_usage:
                    if chunk.get("usage") and not chunk.get("choices"):
                        continue
                    chunk.pop("usage", None)
                yield encode_event(chunk)
            yield DONE
        except BoundedError as exc:
            # The stream was committed (tokens sent); end it with an error event, which
            # OpenAI SDKs raise as an APIError, never a silent truncation.
            yield encode_event(exc.body())
        finally:
            _leave(runtime)

    async def embeddings(self, request: Request) -> Response:
        trace_id = secrets.token_hex(16)
        runtime = self.runtime
        runtime.in_flight += 1
        try:
            self._authenticate(request)
            body = parse_json_object(await _read_body(request, runtime))
            texts = check_embeddings(body)
            name = body["model"]
            model = runtime.embedding_model(name)
            if model is None:
                raise NotFound(f"no embedding model named {name!r}; see GET /v1/models",
                               param="model")
            provider = runtime.providers[model.provider]
            result = await provider.embed(texts, model.model, model.timeout_s or 60.0)
            payload = embeddings_response(name, result, body.get("encoding_format", "float"))
            headers = {"x-bounded-trace-id": trace_id, "x-bounded-route": name,
                       "x-bounded-attempts": "1"}
            return Response(orjson.dumps(payload), media_type=JSON, headers=headers)
        except BoundedError as exc:
            return _error(exc, trace_id, None)
        finally:
            _leave(runtime)

    async def models(self, request: Request) -> Response:
        trace_id = secrets.token_hex(16)
        try:
            principal = self._authenticate(request)
        except BoundedError as exc:
            return _error(exc, trace_id, None)
        runtime = self.runtime
        data = []
        for name, target in runtime.targets.items():
            if principal.may_use(target):
                owner = target.feature.owner if target.feature else "bounded"
                data.append({"id": name, "object": "model", "created": 0, "owned_by": owner,
                             "bounded": {"kind": "feature" if target.feature else "model",
                                         "targets": list(target.route.targets)}})
        for name, model in runtime.config.models.items():
            if model.kind == "embedding":
                data.append({"id": name, "object": "model", "created": 0, "owned_by": "bounded",
                             "bounded": {"kind": "embedding"}})
        return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON,
                        headers={"x-bounded-trace-id": trace_id})

    async def healthz(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def readyz(self, request: Request) -> Response:
        runtime = self.runtime
        status = {
            "status": "ready",
            "reloads": self.reloads,
            "last_reload_error": self.last_reload_error,
            "breakers": runtime.router.breaker_states(),
        }
        return Response(orjson.dumps(status), media_type=JSON)

    def _authenticate(self, request: Request) -> Principal:
        client = request.client.host if request.client else None
        return self.auth.authenticate(request.headers.get("authorization"), client)


def _resolve(runtime: Runtime, name: str, principal: Principal) -> Target:
    target = runtime.targets.get(name)
    if target is None:
        raise NotFound(
            f"no feature or model named {name!r}; see GET /v1/models", param="model"
        )
    principal.check(target)
    return target


def _apply_feature(body: dict[str, Any], target: Target) -> dict[str, Any]:
    """The body sent upstream: the feature's system prompt first, nothing else changed."""
    if target.feature is None or not target.feature.prompt.system:
        return dict(body)
    system = {"role": "system", "content": target.feature.prompt.system}
    return {**body, "messages": [system, *body["messages"]]}


async def _read_body(request: Request, runtime: Runtime) -> bytes:
    limit = runtime.config.server.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _headers(trace_id: str, trace: RouteTrace | None) -> dict[str, str]:
    headers = {"x-bounded-trace-id": trace_id}
    if trace is not None and trace.attempts:
        headers["x-bounded-attempts"] = str(trace.attempts)
        if trace.deployment:
            headers["x-bounded-route"] = trace.deployment
    return headers


def _error(exc: BoundedError, trace_id: str, trace: RouteTrace | None) -> Response:
    headers = {**_headers(trace_id, trace), **exc.headers()}
    return Response(orjson.dumps(exc.body()), status_code=exc.status, media_type=JSON,
                    headers=headers)


def _leave(runtime: Runtime) -> None:
    runtime.in_flight -= 1
    if runtime.in_flight == 0:
        runtime.retired.set()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kinds = {404: ("not_found_error", "unknown_endpoint"),
             405: ("invalid_request_error", "method_not_allowed")}
    kind, code = kinds.get(exc.status_code, ("invalid_request_error", "http_error"))
    message = (f"no endpoint {request.method} {request.url.path}"
               if exc.status_code in kinds else str(exc.detail))
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Response(orjson.dumps(body), status_code=exc.status_code, media_type=JSON)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    body = {"error": {"message": "internal error in bounded; see the server log",
                      "type": "api_error", "param": None, "code": "internal_error"}}
    return Response(orjson.dumps(body), status_code=500, media_type=JSON)


def _mtime(path: Path | None) -> tuple[int, int] | None:
    """Modification time and size: an edit within the same clock tick still shows."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
