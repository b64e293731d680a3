"""Route: the router picks deployments and tries them; the last stage, it answers."""

from __future__ import annotations

from bounded.economics.usage import Usage
from bounded.gateway.call import Call, Next, Reply
from bounded.gateway.embeddings import embeddings_response, provider_inputs
from bounded.gateway.metering import Meter, usage_from_response


class Route:
    name = "route"

    def __init__(self, meter: Meter):
        self._meter = meter

    async def __call__(self, call: Call, next: Next) -> Reply:
        router = call.runtime.router
        gate = self._meter.deployment_gate(call)
        route = call.target.route
        if call.stream:
            call.wants_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
            # Always ask upstream for usage: the ledger needs it even when the client does
            # not; the usage-only chunk is dropped again for such clients.
            call.upstream["stream_options"] = {
                **(call.body.get("stream_options") or {}),
                "include_usage": True,
            }
            routed = await router.stream(
                route, call.upstream, call.trace, gate=gate, exclude=call.exclude
            )
            call.deployment, call.attempts = call.trace.deployment, call.trace.attempts
            return Reply(chunks=routed.chunks)
        response, _ = await router.complete(
            route, call.upstream, call.trace, gate=gate, exclude=call.exclude
        )
        call.deployment, call.attempts = call.trace.deployment, call.trace.attempts
        call.usage = usage_from_response(response)
        if call.usage is None:
            for choice in response.get("choices") or ():
                call.output_text.append((choice.get("message") or {}).get("content") or "")
        return Reply(body=response)


class RouteEmbeddings:
    name = "route"

    def __init__(self, meter: Meter):
        self._meter = meter

    async def __call__(self, call: Call, next: Next) -> Reply:
        runtime = call.runtime
        model = runtime.config.models[call.target.name]
        inputs = provider_inputs(call.upstream["input"], runtime.providers[model.provider])
        result = await runtime.router.embed(
            call.target.route,
            inputs,
            call.trace,
            gate=self._meter.deployment_gate(call),
            dimensions=call.body.get("dimensions"),
        )
        call.deployment, call.attempts = call.trace.deployment, call.trace.attempts
        if result.prompt_tokens:
            call.usage = Usage(result.prompt_tokens, 0)
        encoding = call.body.get("encoding_format") or "float"
        return Reply(body=embeddings_response(call.target.name, result, encoding))
