"""With ``telemetry.otlp_endpoint`` set, traces go out over OTLP HTTP/protobuf: a receiver
decodes them with the official opentelemetry-proto messages."""

from __future__ import annotations

import threading
import time
from typing import Any

import openai
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bounded.telemetry.spans import otel_trace_id
from tests.conftest import ADMIN_KEY, serve_in_thread
from tests.standins.faulty_upstream import FaultyUpstream, ok


class Receiver:
    """An OTLP/HTTP traces endpoint that keeps what it decodes."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.arrived = threading.Event()

    async def traces(self, request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        self.requests.append(message)
        self.content_types.append(request.headers.get("content-type", ""))
        self.arrived.set()
        return Response(b"", media_type="application/x-protobuf")

    def spans(self) -> list[tuple[dict[str, Any], ProtoSpan]]:
        out = []
        for message in self.requests:
            for resource_spans in message.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    out.extend((resource, span) for span in scope_spans.spans)
        return out


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind)


def test_traces_are_exported_over_otlp(gateway_factory: Any, standin: FaultyUpstream) -> None:
    standin.forget()
    standin.always("m", ok("exported"))
    receiver = Receiver()
    app = Starlette(routes=[Route("/v1/traces", receiver.traces, methods=["POST"])])
    with serve_in_thread(app) as collector:
        data = {
            "server": {"dev_key": False, "reload": False},
            "telemetry": {"otlp_endpoint": f"{collector}/v1/traces", "service_name": "gw-test"},
            "providers": {
                "up": {"kind": "openai", "base_url": standin.base_url, "api_key": "sk-x"}
            },
            "models": {"m": {"provider": "up", "model": "m"}},
            "features": {"answer": {"owner": "t", "route": {"targets": ["m"]}}},
        }
        with gateway_factory(data) as (url, gateway):
            # Closed here: a client left to the garbage collector warns of its socket in
            # whichever later test the collection happens to run.
            with openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
                raw = client.chat.completions.with_raw_response.create(
                    model="answer", messages=[{"role": "user", "content": "hi"}]
                )
            trace_id = raw.headers["x-bounded-trace-id"]
            assert gateway.telemetry.flush()
            deadline = time.monotonic() + 10
            while not receiver.spans() and time.monotonic() < deadline:
                receiver.arrived.wait(0.1)
    assert receiver.content_types[0] == "application/x-protobuf"
    spans = receiver.spans()
    resource, _ = spans[0]
    assert resource["service.name"] == "gw-test"
    by_name = {span.name: span for _, span in spans}
    root = by_name["chat answer"]
    assert root.kind == ProtoSpan.SPAN_KIND_SERVER and root.parent_span_id == b""
    assert root.trace_id.hex() == otel_trace_id(trace_id) == trace_id
    attrs = {a.key: _value(a.value) for a in root.attributes}
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "answer"
    assert attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["bounded.feature"] == "answer"
    attempt = by_name["chat m"]
    assert attempt.kind == ProtoSpan.SPAN_KIND_CLIENT
    route = by_name["route"]
    assert attempt.parent_span_id == route.span_id
    assert all(span.trace_id == root.trace_id for _, span in spans)
    assert root.start_time_unix_nano <= attempt.start_time_unix_nano
    assert attempt.end_time_unix_nano <= root.end_time_unix_nano
