"""Context: for features with ``retrieval:``, numbered sources in, citations out.

Before admission on purpose: the budget reservation must count the tokens it adds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from bounded.config.schema import FeatureRetrieval
from bounded.economics.tokens import TokenCounter
from bounded.errors import PermissionDenied
from bounded.gateway.call import Call, Next, Reply
from bounded.gateway.streams import then_last
from bounded.retrieval.access import viewer_for
from bounded.retrieval.context import (
    Screen,
    assemble_context,
    attach_citations,
    citations_event,
)
from bounded.validation.enforce import FeatureGuards
from bounded.validation.guards.base import ScanContext

if TYPE_CHECKING:
    from bounded.retrieval.search import Hit
    from bounded.retrieval.service import RetrievalService

ServiceRef = Callable[[], "RetrievalService | None"]


class Context:
    name = "context"

    def __init__(self, service: ServiceRef, counter: TokenCounter):
        self._service = service
        self._counter = counter

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        feature = call.target.feature
        service = self._service()
        if feature is None or feature.retrieval is None or service is None:
            return next(call)
        return self._retrieve(call, next, feature.retrieval, service)

    async def _retrieve(
        self, call: Call, next: Next, retrieval: FeatureRetrieval, service: RetrievalService
    ) -> Reply:
        model = call.runtime.config.models[call.target.route.targets[0]].model
        guards = call.runtime.guards.get(call.target.name)
        assembled = await assemble_context(
            service,
            retrieval,
            call.upstream["messages"],
            viewer_for(call.principal),
            count=self._counter.counter_for(model),
            screen=_screen(call, guards) if guards is not None and guards.retrieved else None,
        )
        call.upstream["messages"] = assembled.messages
        call.sources = [c.text for c in assembled.citations]
        citations = assembled.citations_json()
        if not citations:
            return await next(call)
        call.headers["x-bounded-citations"] = assembled.header()
        reply = await next(call)
        if reply.chunks is not None:
            reply.chunks = then_last(
                reply.chunks, lambda last: citations_event(citations, like=last)
            )
        elif reply.body is not None:
            reply.body = attach_citations(reply.body, citations)
        return reply


def _screen(call: Call, guards: FeatureGuards) -> Screen:
    """Retrieved guards over each hit (in the search thread): drop, redact or refuse."""
    from bounded.validation.guards.redact import Vault

    context = ScanContext("retrieved", guards.risk_tier)
    clean = guards.clean_retrieved

    def screen(hit: Hit) -> Hit | None:
        text = hit.chunk.text
        if clean is not None and text in clean:
            return hit  # found clean before: the same text gets the same verdict
        outcome = guards.retrieved.run(text, context, Vault())
        if not outcome.hits:
            if clean is not None:
                clean.put(text, True)
            return hit
        call.guard_hits += [("retrieved", h) for h in outcome.hits]
        if outcome.blocked is not None:
            raise RetrievedBlocked(
                f"a retrieved source was refused by the {outcome.blocked.spec.kind} guard; "
                "the request was not sent"
            )
        if outcome.dropped:
            call.flags.append("retrieved_dropped")
            return None
        if outcome.text != text:
            return replace(hit, chunk=replace(hit.chunk, text=outcome.text))
        return hit

    return screen


class RetrievedBlocked(PermissionDenied):
    default_code = "retrieved_blocked"
