"""The ASGI app: OpenAI-compatible endpoints in front of the router.

    gateway = Gateway(config, db=Database.open(url), config_path=Path("bounded.yaml"))
    app = gateway.app()          # any ASGI server; `bounded serve` uses uvicorn

Every response, errors included, carries ``x-bounded-trace-id``; routed ones also carry
``x-bounded-route`` (the deployment that answered) and ``x-bounded-attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bounded.audit import AuditLog
from bounded.audit import api as audit_api
from bounded.config.loader import ConfigError, load_config
from bounded.config.schema import BoundedConfig
from bounded.dashboard.pages import Dashboard
from bounded.economics.accountant import Accountant, MemoryAccountant
from bounded.economics.ledger import Ledger, SqlLedger
from bounded.economics.rollup import rollup_forever
from bounded.economics.spend import spend_since
from bounded.economics.tokens import TokenCounter
from bounded.errors import BoundedError, InvalidRequest, NotFound
from bounded.gateway import economics_api, guards_api
from bounded.gateway.auth import Authenticator, Principal
from bounded.gateway.call import client_trace_id
from bounded.gateway.chat import chat_pipeline, embeddings_pipeline, endpoint
from bounded.gateway.metering import Meter
from bounded.gateway.models_api import model_list
from bounded.gateway.openapi import openapi_document
from bounded.gateway.respond import error_response
from bounded.gateway.runtime import Runtime
from bounded.governance.alerts import watch_forever
from bounded.prompts import PromptCache, PromptStore
from bounded.prompts import api as prompts_api
from bounded.prompts.store import seed_config
from bounded.releases import api as releases_api
from bounded.releases.service import Releases
from bounded.retrieval.hooks import open_service
from bounded.retrieval.refresher import refresh_forever
from bounded.retrieval.routes import retrieval_routes
from bounded.store.db import Database
from bounded.store.keys import KeyRepository
from bounded.telemetry import api as telemetry_api
from bounded.telemetry.hub import Telemetry
from bounded.telemetry.metrics import MeteredLedger
from bounded.telemetry.retention import sweep_forever
from bounded.telemetry.tracing import traced

log = logging.getLogger("bounded.gateway")

JSON = "application/json"


class Gateway:
    def __init__(
        self,
        config: BoundedConfig,
        *,
        db: Database,
        admin_key: str | None = None,
        dev_key: str | None = None,
        config_path: Path | None = None,
        reload_interval_s: float = 1.0,
        accountant: Accountant | None = None,
        ledger: Ledger | None = None,
    ):
        self.runtime = Runtime.build(config)
        self.retrieval = open_service(config)  # None when no collections are configured
        self._refresher: asyncio.Task[None] | None = None
        self.db = db
        self.keys = KeyRepository(db)
        self.auth = Authenticator(self.keys, admin_key, dev_key)
        self.audit = AuditLog(db)
        self.prompt_store = PromptStore(db)
        seed_config(self.prompt_store, _config_prompts(config))  # bounded.yaml's: version 1
        self.prompts = PromptCache(self.prompt_store)
        # Shadow and canary releases: state in the store, decided by a background evaluator.
        self.releases = Releases(db, lambda: self.runtime.config, on_change=self.prompts.invalidate)
        # Traces and metrics: every stage wrapped in its span, every ledger row counted.
        self.telemetry = Telemetry(db.url, config.telemetry)
        self.meter = Meter(
            accountant or MemoryAccountant(lambda scope, start: spend_since(db, scope, start)),
            MeteredLedger(ledger or SqlLedger(db), self.telemetry.metrics, self._provider_kind),
            TokenCounter(),
        )
        self.chat_pipeline = traced(
            chat_pipeline(
                self.auth,
                self.meter,
                lambda: self.retrieval,
                lambda: self.prompts,
                lambda: self.releases,
            ),
            self.telemetry,
        )
        self.embeddings_pipeline = traced(
            embeddings_pipeline(self.auth, self.meter), self.telemetry
        )
        self.chat_completions = endpoint(self.chat_pipeline, lambda: self.runtime, "chat")
        self.embeddings = endpoint(self.embeddings_pipeline, lambda: self.runtime, "embeddings")
        self.config_path = config_path
        self.reload_interval_s = reload_interval_s
        self.reloads = 0
        self.last_reload_error: str | None = None
        self._mtime = _mtime(config_path)
        self._watcher: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        # The dashboard and the drift checks read through their own connection: a slow page
        # never holds the lock the ledger's writes take.
        self.reader = Database.open(db.url, migrate=False)
        self.dashboard = Dashboard(
            self.reader,
            runtime=lambda: self.runtime,
            authenticate=self.auth.authenticate,
            admin_key=admin_key,
            traces_url=getattr(self.telemetry, "url", db.url),
        )

    # -- lifecycle ---------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Every endpoint; ``/openapi.json`` describes each (a test holds them equal)."""
        return [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{name:path}", self.model, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            *economics_api.routes(
                self.authenticate, self.db, lambda: self.runtime.config.server.max_body_bytes
            ),
            *guards_api.routes(self.authenticate, lambda: self.runtime),
            *retrieval_routes(lambda: self.retrieval, self.authenticate),
            *telemetry_api.routes(
                self.authenticate,
                self.db,
                self.telemetry.metrics,
                lambda: self.runtime.router.breaker_states(),
            ),
            *prompts_api.routes(self.authenticate, self.prompt_store),
            *audit_api.routes(self.authenticate, self.audit),
            *releases_api.routes(self.authenticate, self.reader, lambda: self.runtime.config),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ]

    def app(self) -> ASGIApp:
        starlette = Starlette(
            routes=[*self.routes(), self.dashboard.mount()],
            lifespan=self._lifespan,
            exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        )
        chat_completions = self.chat_completions

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            """The hot endpoint skips Starlette's routing and middleware stack.

            Measured: about a fifth less CPU per request; everything else (lifespan, other
            routes, 404/405) goes through Starlette unchanged.
            """
            if (
                scope["type"] == "http"
                and scope["path"] == "/v1/chat/completions"
                and scope["method"] == "POST"
            ):
                request = Request(scope, receive, send)
                try:
                    response = await chat_completions(request)
                except Exception as exc:
                    response = await _unexpected_error(request, exc)
                await response(scope, receive, send)
                return
            if scope["type"] == "http" and _nul_in_url(scope):
                request = Request(scope, receive, send)
                refused = InvalidRequest("the URL holds a NUL character (%00): no name or id can")
                await error_response(refused, client_trace_id(request))(scope, receive, send)
                return
            await starlette(scope, receive, send)

        return app

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self.config_path is not None and self.runtime.config.server.reload:
            self._watcher = asyncio.create_task(self._watch())
        warming = asyncio.create_task(self._warm())
        self._refresher = asyncio.create_task(refresh_forever(lambda: self.retrieval))
        self.releases.start()
        retention = asyncio.create_task(
            sweep_forever(self.db.url, lambda: self.runtime.config.telemetry)
        )
        drift = asyncio.create_task(watch_forever(self.reader, lambda: self.runtime.config))
        # The dashboard's hourly rollup of the ledger, on a connection of its own.
        rollup = asyncio.create_task(rollup_forever(self.db.url))
        try:
            yield
        finally:
            drift.cancel()
            rollup.cancel()
            retention.cancel()
            if self._watcher is not None:
                self._watcher.cancel()
            self._refresher.cancel()
            await self.releases.stop()
            if self.retrieval is not None:
                self.retrieval.close()
            await warming
            await self.runtime.close_when_idle()
            await self.meter.ledger.aclose()
            await self.meter.accountant.aclose()
            await asyncio.to_thread(self.telemetry.close)
            self.dashboard.close()
            self.reader.close()

    async def _warm(self) -> None:
        """Freeze everything built at start-up out of the garbage collector's way: fewer,
        shorter collections under load. (Token encodings load on first need, off the loop:
        o200k alone is ~70 MB that a gateway without budgets never uses.)"""
        gc.collect()
        gc.freeze()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval_s)
            mtime = _mtime(self.config_path)
            if mtime != self._mtime:
                # Let a save in progress finish: reload once the file holds still.
                await asyncio.sleep(min(0.05, self.reload_interval_s))
                if _mtime(self.config_path) != mtime:
                    continue
                self._mtime = mtime
                await self.reload()

    async def reload(self) -> bool:
        """Re-read the config file; on success swap the runtime, else keep the old one."""
        assert self.config_path is not None
        try:
            config = load_config(self.config_path)
            runtime = Runtime.build(config, previous=self.runtime)
            self.retrieval = open_service(config, previous=self.retrieval)
        except ConfigError as exc:
            self.last_reload_error = str(exc)
            log.error("config reload rejected, keeping the running config:\n%s", exc)
            await self._audit_reload("config.reload_rejected", {"problems": len(exc.problems)})
            return False
        old, self.runtime = self.runtime, runtime
        self.reloads += 1
        try:  # a changed prompt.system is a new version while the file owns production
            await asyncio.to_thread(seed_config, self.prompt_store, _config_prompts(config))
        except BoundedError:
            log.exception("could not store the prompts of the reloaded config")
        self.prompts.invalidate()
        await self._audit_reload("config.reload", {"features": sorted(config.features)})
        self.last_reload_error = None
        log.info("config reloaded from %s", self.config_path)
        # Keep a reference: a task nobody holds can be garbage-collected mid-flight.
        retiring = asyncio.create_task(old.close_when_idle(successor=runtime))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)
        return True

    async def _audit_reload(self, action: str, detail: dict[str, object]) -> None:
        path = str(self.config_path)
        try:
            await asyncio.to_thread(
                self.audit.record, action, path, actor="bounded serve", detail=detail
            )
        except Exception:  # the audit store failing must not undo or block a reload
            log.exception("could not record %s in the audit log", action)

    async def openapi(self, request: Request) -> Response:
        runtime = self.runtime
        models = (*runtime.targets, *runtime.embedding_targets)
        collections = tuple(runtime.config.collections)
        return Response(openapi_document(models, collections), media_type=JSON)

    def _provider_kind(self, name: str) -> str | None:
        provider = self.runtime.config.providers.get(name)
        return provider.kind if provider is not None else None

    def authenticate(self, request: Request) -> Principal:
        client = request.client.host if request.client else None
        return self.auth.authenticate(request.headers.get("authorization"), client)

    # -- endpoints ---------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        trace_id = client_trace_id(request)
        try:
            principal = self.authenticate(request)
        except BoundedError as exc:
            return error_response(exc, trace_id)
        promoted = (await self.releases.cache.current()).routes
        data = model_list(self.runtime, principal, promoted)
        return _json({"object": "list", "data": data}, trace_id)

    async def model(self, request: Request) -> Response:
        """``GET /v1/models/{id}`` (the SDK's ``models.retrieve``)."""
        trace_id = client_trace_id(request)
        name = request.path_params["name"]
        try:
            principal = self.authenticate(request)
            promoted = (await self.releases.cache.current()).routes
            for entry in model_list(self.runtime, principal, promoted):
                if entry["id"] == name:
                    return _json(entry, trace_id)
            raise NotFound(f"no feature or model named {name!r}; see GET /v1/models")
        except BoundedError as exc:
            return error_response(exc, trace_id)

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


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kinds = {
        404: ("not_found_error", "unknown_endpoint"),
        405: ("invalid_request_error", "method_not_allowed"),
    }
    kind, code = kinds.get(exc.status_code, ("invalid_request_error", "http_error"))
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"no endpoint {request.method} {request.url.path}; see GET /openapi.json"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.url.path} does not take {request.method}; it takes {allowed}"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Response(
        orjson.dumps(body), status_code=exc.status_code, media_type=JSON, headers=exc.headers
    )


def _nul_in_url(scope: Scope) -> bool:
    """A NUL in a path or query parameter: PostgreSQL refuses it in any query (a 500 there),
    SQLite would look it up, so both stores answer 400 here instead."""
    return "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    body = {
        "error": {
            "message": "internal error in bounded; see the server log",
            "type": "api_error",
            "param": None,
            "code": "internal_error",
        }
    }
    return Response(orjson.dumps(body), status_code=500, media_type=JSON)


def _json(payload: object, trace_id: str) -> Response:
    return Response(
        orjson.dumps(payload), media_type=JSON, headers={"x-bounded-trace-id": trace_id}
    )


def _config_prompts(config: BoundedConfig) -> dict[str, str]:
    return {name: f.prompt.system for name, f in config.features.items() if f.prompt.system}


def _mtime(path: Path | None) -> tuple[int, int] | None:
    """Modification time and size: an edit within the same clock tick still shows."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
