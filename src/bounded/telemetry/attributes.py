"""Span attributes by the OpenTelemetry GenAI semantic conventions (v1.41), plus ``bounded.*``.

Root span, ``{gen_ai.operation.name} {gen_ai.request.model}`` (e.g. ``chat support-answer``):
``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model`` (the feature
or alias the client named), ``gen_ai.request.max_tokens|temperature|top_p|...``,
``gen_ai.response.id|model|finish_reasons``, ``gen_ai.usage.input_tokens|output_tokens``,
``gen_ai.conversation.id`` (the session, hashed when it holds personal data), ``error.type``;
and ``bounded.feature|team|arm|prompt.version|cost_usd|deployment|attempts|validation``.

Upstream attempt spans, ``chat {model}`` with kind CLIENT: the provider, the deployment's
model name, ``server.address``, ``error.type`` when the attempt failed.

Only values bounded chose or checked go in: names from the config, numbers from a body that
passed the request schema. Nothing a client typed freely (a message, ``user``, an unknown
model name) becomes an attribute, so no personal data reaches the span store.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from bounded.telemetry.spans import Attributes

# The provider kinds' gen_ai.provider.name (the conventions' well-known values where they
# exist; an OpenAI-compatible server is "openai" by the conventions' own advice).
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "local": "llama.cpp"}

# Request parameters recorded when the body had them (all checked numbers or lists).
_REQUEST_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
}


def operation_name(call: Any) -> str:
    return "embeddings" if call.operation == "embeddings" else "chat"


def request_model(call: Any) -> str | None:
    target = getattr(call, "target", None)
    return target.name if target is not None else None


def provider_of(call: Any, deployment: str | None) -> tuple[str | None, Any]:
    config = call.runtime.config
    model = config.models.get(deployment or "")
    if model is None:
        return None, None
    provider = config.providers.get(model.provider)
    return (PROVIDER_NAMES.get(provider.kind, provider.kind) if provider else None), model


def root_attributes(call: Any, passes: list[Any], reply: dict[str, Any]) -> Attributes:
    attrs: Attributes = {"gen_ai.operation.name": operation_name(call)}
    model_name = request_model(call)
    if model_name is not None:
        attrs["gen_ai.request.model"] = model_name
        target = call.target
        if target.feature is not None:
            attrs["bounded.feature"] = target.name
            attrs["bounded.risk_tier"] = target.feature.risk_tier
            attrs["bounded.prompt.version"] = target.feature.prompt.version
        team = call.team
        if team:
            attrs["bounded.team"] = team
    body = getattr(call, "body", None)
    if isinstance(body, dict):
        for key, name in _REQUEST_PARAMS.items():
            value = body.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[name] = value
        if body.get("stream"):
            attrs["bounded.stream"] = True
    # The release engineer's fields, when the Call has them (arm, prompt version).
    arm = getattr(call, "arm", None)
    attrs["bounded.arm"] = arm if isinstance(arm, str) and arm else "stable"
    version = getattr(call, "prompt_version", None)
    if isinstance(version, str) and version:
        attrs["bounded.prompt.version"] = version
    provider, model = provider_of(call, call.deployment)
    if provider is not None:
        attrs["gen_ai.provider.name"] = provider
        attrs["bounded.deployment"] = call.deployment
    if call.session_id:
        attrs["gen_ai.conversation.id"] = call.session_id
    if reply.get("id"):
        attrs["gen_ai.response.id"] = str(reply["id"])[:128]
    if model is not None:
        # The deployment's own name for the model (what the upstream answered with).
        attrs["gen_ai.response.model"] = model.model
    if reply.get("finish_reasons"):
        attrs["gen_ai.response.finish_reasons"] = tuple(reply["finish_reasons"])
    _usage(attrs, passes or [call])
    attrs["bounded.cost_usd"] = float(call.cost)
    attrs["bounded.attempts"] = call.trace.attempts
    if len(passes) > 1:
        attrs["bounded.passes"] = len(passes)
    if call.validation:
        attrs["bounded.validation"] = call.validation
    if call.groundedness is not None:
        attrs["bounded.groundedness"] = round(float(call.groundedness), 4)
    if call.guard_hits:
        attrs["bounded.guard_hits"] = tuple(
            sorted({f"{place}:{hit.spec.kind}:{hit.spec.action}" for place, hit in call.guard_hits})
        )
    if call.flags:
        attrs["bounded.flags"] = tuple(call.flags)
    attrs["http.response.status_code"] = call.status
    if call.error_class:
        attrs["error.type"] = call.error_class
    return attrs


def _usage(attrs: Attributes, passes: list[Any]) -> None:
    used = [p.usage for p in passes if p.usage is not None]
    if not used:
        return
    attrs["gen_ai.usage.input_tokens"] = sum(u.input_tokens for u in used)
    attrs["gen_ai.usage.output_tokens"] = sum(u.output_tokens for u in used)


@functools.lru_cache(maxsize=256)
def _address(base_url: str) -> tuple[str | None, int | None]:
    """A provider's host and port, parsed once per URL: ``urlsplit`` and its ``hostname``
    and ``port`` took 1.1 µs per attempt span (1.7% of the trace writer's samples under
    load), the cached lookup 0.1 µs."""
    parts = urlsplit(base_url)
    try:
        port = parts.port
    except ValueError:  # a port out of range: the span goes without it
        port = None
    return parts.hostname, port


def attempt_attributes(call: Any, deployment: str, error: str | None) -> tuple[str, Attributes]:
    """The name and attributes of one upstream attempt's span."""
    operation = operation_name(call)
    provider, model = provider_of(call, deployment)
    attrs: Attributes = {"gen_ai.operation.name": operation, "bounded.deployment": deployment}
    name = operation
    if model is not None:
        attrs["gen_ai.request.model"] = model.model
        name = f"{operation} {model.model}"
        base_url = call.runtime.config.providers[model.provider].base_url
        if base_url:
            host, port = _address(base_url)
            if host:
                attrs["server.address"] = host
            if port:
                attrs["server.port"] = port
    if provider is not None:
        attrs["gen_ai.provider.name"] = provider
    if error is not None:
        attrs["error.type"] = error
    return name, attrs
