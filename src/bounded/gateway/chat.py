"""``POST /v1/chat/completions`` and ``POST /v1/embeddings``: each is its list of stages.

The same list serves JSON and SSE; what a stage does with a stream it does by wrapping
the reply's chunks (see :mod:`bounded.gateway.call`). The order is deliberate: auth
before the body is read (a wrong key never costs a parse); context before admit (the
reservation counts the tokens retrieval adds, and input guards run before both, so neither
sees a raw value a guard redacts); validate outside settle and check inside it (each
upstream pass, a repair or an escalation, is settled with its own verdict, and validate
decides on the next); settle outside admit and route (a refused or failed request still
leaves its ledger row); release after resolve and before the prompt (it picks the arm, and
with it the prompt version and route the rest of the path uses).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from bounded.gateway.api_schema import check_chat, check_embeddings
from bounded.gateway.auth import Authenticator
from bounded.gateway.call import Call, Pipeline
from bounded.gateway.metering import Meter
from bounded.gateway.respond import run
from bounded.gateway.runtime import Runtime
from bounded.gateway.stages.admit import Admit
from bounded.gateway.stages.auth import Authenticate
from bounded.gateway.stages.body import ReadBody
from bounded.gateway.stages.check import Check
from bounded.gateway.stages.context import Context, ServiceRef
from bounded.gateway.stages.guard_input import InputGuards
from bounded.gateway.stages.prompt import PromptsRef, RenderPrompt
from bounded.gateway.stages.release import ReleaseArm, ReleasesRef
from bounded.gateway.stages.resolve import Resolve, ResolveEmbedding
from bounded.gateway.stages.route import Route, RouteEmbeddings
from bounded.gateway.stages.settle import Settle
from bounded.gateway.stages.validate import Validate
from bounded.gateway.whole_response import JsonAnswer


def chat_pipeline(
    auth: Authenticator,
    meter: Meter,
    retrieval: ServiceRef,
    prompts: PromptsRef = lambda: None,
    releases: ReleasesRef = lambda: None,
) -> Pipeline:
    return Pipeline(
        [
            Authenticate(auth),
            ReadBody(check_chat),
            Resolve(),
            ReleaseArm(releases),
            RenderPrompt(prompts),
            InputGuards(),
            Context(retrieval, meter.counter),
            Validate(),
            Settle(meter),
            Check(),
            Admit(meter),
            Route(meter),
        ]
    )


def embeddings_pipeline(auth: Authenticator, meter: Meter) -> Pipeline:
    return Pipeline(
        [
            Authenticate(auth),
            ReadBody(check_embeddings),
            ResolveEmbedding(),
            Settle(meter),
            Admit(meter),
            RouteEmbeddings(meter),
        ]
    )


def endpoint(
    pipeline: Pipeline, runtime: Callable[[], Runtime], operation: str
) -> Callable[[Request], Awaitable[Response | JsonAnswer]]:
    """An endpoint that runs ``pipeline`` on the runtime current when a request starts
    (a reload swaps the runtime; a request keeps the one it started on)."""

    async def handle(request: Request) -> Response | JsonAnswer:
        return await run(pipeline, Call.begin(request, runtime(), operation))

    return handle
