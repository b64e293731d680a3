"""Resolve: what ``model`` names (a feature or a model alias), and may this key use it."""

from __future__ import annotations

from collections.abc import Awaitable

from bounded.errors import NotFound, PermissionDenied
from bounded.gateway.call import Call, Next, Reply
from bounded.gateway.runtime import Runtime, Target


class Resolve:
    """Chat: the target, and the body that goes upstream (as sent; the prompt stage puts
    the feature's prompt version before the client's messages)."""

    name = "resolve"

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        call.target = chat_target(call.runtime, call.body["model"])
        call.principal.check(call.target)
        call.upstream = dict(call.body)
        return next(call)


class ResolveEmbedding:
    """Embeddings: the model, routed like a one-target feature (breaker, rate limits)."""

    name = "resolve"

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        name = call.body["model"]
        target = call.runtime.embedding_targets.get(name)
        if target is None:
            raise _not_found(call.runtime, name, "embedding model", "/v1/chat/completions")
        if not call.principal.may_embed(name):
            raise PermissionDenied(
                f"key {call.principal.name!r} may not use {name!r}; "
                "create a key with --feature that names it"
            )
        call.target = target
        call.upstream = dict(call.body)
        return next(call)


def chat_target(runtime: Runtime, name: str) -> Target:
    target = runtime.targets.get(name)
    if target is None:
        raise _not_found(runtime, name, "feature or model", "/v1/embeddings")
    return target


def _not_found(runtime: Runtime, name: str, what: str, other: str) -> Exception:
    model = runtime.config.models.get(name)
    if model is not None:
        # It exists, at the other endpoint: say so rather than "no such model".
        return NotFound(f"{name!r} is a {model.kind} model; call it at {other}", param="model")
    return NotFound(f"no {what} named {name!r}; see GET /v1/models", param="model")
