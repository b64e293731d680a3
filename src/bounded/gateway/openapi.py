"""``GET /openapi.json``: every endpoint bounded serves, from the schemas it validates with.

The request bodies are the pydantic models the gateway checks requests against
(:mod:`.api_schema`), so the document cannot drift from what is enforced; the replies
are :mod:`.api_responses`. Built once per process, on first request.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bounded import __version__
from bounded.gateway import api_responses as out
from bounded.gateway.api_schema import (
    ChatCompletionRequest,
    EmbeddingsRequest,
    GuardsCheckRequest,
    OutcomeRequest,
    SearchRequest,
)

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "bad JSON, a body nested too deep, or a request the upstream refused",
    "401": "missing, wrong, revoked or expired key",
    "403": "the key may not use this feature, model or action",
    "404": "no such feature, model or collection",
    "408": "the request's headers or body did not arrive in time",
    "413": "body over server.max_body_bytes",
    "422": "a field has the wrong type or value; param names it",
    "429": "a budget or rate limit; retry-after says when",
    "431": "request headers too large",
    "502": "every upstream attempt failed (after retries and fallbacks)",
    "503": "a store bounded needs is unreachable",
    "504": "the upstream or the request's deadline timed out",
}


@functools.lru_cache(maxsize=8)
def openapi_document(models: tuple[str, ...] = (), collections: tuple[str, ...] = ()) -> bytes:
    """The document, with this gateway's feature, model and collection names as examples
    (so generated clients and fuzzers try names that exist)."""
    return orjson.dumps(build(models, collections))


def build(models: tuple[str, ...] = (), collections: tuple[str, ...] = ()) -> dict[str, Any]:
    bodies: list[type[BaseModel]] = [
        ChatCompletionRequest,
        EmbeddingsRequest,
        OutcomeRequest,
        SearchRequest,
        GuardsCheckRequest,
        out.ErrorBody,
        out.ChatCompletion,
        out.ChatCompletionChunk,
        out.EmbeddingList,
        out.Model,
        out.ModelList,
        out.OutcomeRecorded,
        out.SearchHits,
        out.GuardsReport,
        out.Anything,
    ]
    refs, defs = models_json_schema([(m, "validation") for m in bodies], ref_template=_REF)
    schemas = dict(defs.get("$defs", {}))
    for request in ("ChatCompletionRequest", "EmbeddingsRequest"):
        if models:
            schemas[request]["properties"]["model"]["examples"] = list(models)

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "validation")]

    chat_ok = {
        "description": "a chat completion, or with stream: true an SSE stream of chunks",
        "content": {
            "application/json": {"schema": ref(out.ChatCompletion)},
            "text/event-stream": {"schema": ref(out.ChatCompletionChunk)},
        },
        "headers": {
            "x-bounded-trace-id": {"schema": {"type": "string"}},
            "x-bounded-route": {"schema": {"type": "string"}},
            "x-bounded-attempts": {"schema": {"type": "string"}},
            "x-bounded-cost-usd": {"schema": {"type": "string"}},
            "x-bounded-prompt-version": {"schema": {"type": "string"}},
        },
    }
    trace_header = {
        "name": "x-bounded-trace-id",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
        "description": "your own trace id, to tie several calls together",
    }
    session_header = {
        "name": "x-bounded-session",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        "description": "a session or conversation id, for outcomes and spend",
    }
    model_param = _path_param(models)
    collection_param = _path_param(collections)
    paths: dict[str, Any] = {
        "/v1/chat/completions": {
            "post": _op(
                "Chat completion through a feature or model alias",
                ref(ChatCompletionRequest),
                chat_ok,
                [trace_header, session_header],
            )
        },
        "/v1/embeddings": {
            "post": _op(
                "Embeddings",
                ref(EmbeddingsRequest),
                _ok(ref(out.EmbeddingList)),
                [trace_header, session_header],
            )
        },
        "/v1/models": {
            "get": _op("Features and models this key may use", None, _ok(ref(out.ModelList)))
        },
        "/v1/models/{name}": {
            "get": _op("One feature or model", None, _ok(ref(out.Model)), [model_param])
        },
        "/v1/outcomes": {
            "post": _op(
                "Link a business outcome to a call or session",
                ref(OutcomeRequest),
                _ok(ref(out.OutcomeRecorded), "201"),
            )
        },
        "/v1/spend": {
            "get": _op(
                "Spend and cost per outcome (admin key)",
                None,
                _ok(ref(out.Anything)),
                [
                    {
                        "name": "period",
                        "in": "query",
                        "schema": {"enum": ["hour", "day", "week", "month", "total"]},
                    },
                    {"name": "since", "in": "query", "schema": {"type": "number"}},
                ],
            )
        },
        "/v1/guards/check": {
            "post": _op(
                "What a guard policy would do with a text (findings never hold values)",
                ref(GuardsCheckRequest),
                _ok(ref(out.GuardsReport)),
            )
        },
        "/v1/collections": {
            "get": _op("Collections and their freshness", None, _ok(ref(out.Anything)))
        },
        "/v1/collections/{name}/search": {
            "post": _op(
                "Search a collection",
                ref(SearchRequest),
                _ok(ref(out.SearchHits)),
                [collection_param],
            )
        },
        "/v1/collections/{name}/sync": {
            "post": _op(
                "Sync a collection (admin key)", None, _ok(ref(out.Anything)), [collection_param]
            )
        },
        "/v1/prompts/{feature}": {
            "get": _op(
                "A feature's prompt versions and labels, one version in full (admin key)",
                None,
                _ok(ref(out.Anything)),
                [
                    {"name": "feature", "in": "path", "required": True, "schema": _name(models)},
                    {"name": "version", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
        "/v1/releases/{feature}/pairs": {
            "get": _op(
                "A shadow release's answers side by side, stable and candidate, per request"
                " (scope traces:read; answer text also traces:read_text)",
                None,
                _ok(ref(out.Anything)),
                [
                    {"name": "feature", "in": "path", "required": True, "schema": _name(models)},
                    {"name": "release", "in": "query", "schema": {"type": "string"}},
                    {"name": "differ", "in": "query", "schema": {"type": "boolean"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                ],
            )
        },
        "/v1/audit": {
            "get": _op(
                "The audit log: who changed what and when (scope audit:read)",
                None,
                _ok(ref(out.Anything)),
                [
                    {"name": "since", "in": "query", "schema": {"type": "number", "minimum": 0}},
                    {"name": "action", "in": "query", "schema": {"type": "string"}},
                    {"name": "subject", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                ],
            )
        },
        "/v1/traces": {
            "get": _op(
                "Search traces, newest first (scope traces:read)",
                None,
                _ok(ref(out.Anything)),
                [
                    {"name": "feature", "in": "query", "schema": {"type": "string"}},
                    {"name": "status", "in": "query", "schema": {"enum": ["ok", "error"]}},
                    {"name": "since", "in": "query", "schema": {"type": "number"}},
                    {"name": "until", "in": "query", "schema": {"type": "number"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                ],
            )
        },
        "/v1/traces/{trace_id}": {
            "get": _op(
                "One trace: its requests and spans; ?include=text needs traces:read_text",
                None,
                _ok(ref(out.Anything)),
                [
                    {
                        "name": "trace_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {"name": "include", "in": "query", "schema": {"enum": ["text"]}},
                ],
            )
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (scope metrics:read)",
                "responses": {
                    "200": {
                        "description": "success",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/healthz": {"get": _public("Liveness", ref(out.Anything))},
        "/readyz": {"get": _public("Readiness, reloads and breaker states", ref(out.Anything))},
        "/openapi.json": {"get": _public("This document", {"type": "object"})},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bounded",
            "version": __version__,
            "description": "An OpenAI-compatible control plane for AI features.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _name(examples: tuple[str, ...]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if examples:
        schema["examples"] = list(examples)
    return schema


def _path_param(examples: tuple[str, ...]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if examples:
        schema["examples"] = list(examples)
    return {"name": "name", "in": "path", "required": True, "schema": schema}


def _ok(schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": "success", "content": {"application/json": {"schema": schema}}}}


def _op(
    summary: str,
    body: dict[str, Any] | None,
    success: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    if "description" in success:  # a single response object: the 200
        success = {"200": success}
    error = {"content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}}
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": parameters or [],
        "responses": {**success, **{s: {"description": d, **error} for s, d in _ERRORS.items()}},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return operation


def _public(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "security": [], **{"responses": _ok(schema)}}
