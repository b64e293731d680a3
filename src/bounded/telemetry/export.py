"""Stored spans become OpenTelemetry SDK spans and go out over OTLP (HTTP/protobuf).

    exporter = OtlpExport("http://collector:4318/v1/traces", service_name="bounded")
    exporter(records)        # from the trace writer's thread: queued, never waits
    exporter.shutdown()

The SDK does the sending: each span is a ``ReadableSpan`` handed to a
``BatchSpanProcessor`` over the official ``OTLPSpanExporter``, so batching, retries with
backoff and the protobuf encoding are the SDK's. Only the recording on the hot path is
bounded's own (see :mod:`bounded.telemetry.spans` for why).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from bounded import __version__
from bounded.telemetry.spanlist import self_times
from bounded.telemetry.spans import Span, otel_trace_id
from bounded.telemetry.store import TraceRecord

KINDS = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT}
SCOPE = InstrumentationScope("bounded", __version__)


def to_sdk(records: Sequence[TraceRecord], resource: Resource) -> list[ReadableSpan]:
    out: list[ReadableSpan] = []
    for record in records:
        trace_id = int(otel_trace_id(record.trace_id), 16)
        # bounded.self_ms, as the store's readers add it (the writer no longer stores it).
        own = self_times((s.span_id, s.parent_id, s.start_ns, s.end_ns) for s in record.spans)
        for span in record.spans:
            out.append(_readable(span, trace_id, record.trace_id, resource, own))
    return out


def _readable(
    span: Span, trace_id: int, bounded_id: str, resource: Resource, own: dict[str, float]
) -> ReadableSpan:
    flags = TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(trace_id, int(span.span_id, 16), is_remote=False, trace_flags=flags)
    parent = None
    if span.parent_id is not None:
        parent = SpanContext(trace_id, int(span.parent_id, 16), is_remote=False, trace_flags=flags)
    attributes = dict(span.attributes)
    if "bounded.stage" in attributes:
        attributes["bounded.self_ms"] = own[span.span_id]
    if span.parent_id is None:
        attributes["bounded.trace_id"] = bounded_id  # the id in x-bounded-trace-id
    status = Status(StatusCode.ERROR) if span.status == "error" else Status(StatusCode.UNSET)
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        kind=KINDS.get(span.kind, SpanKind.INTERNAL),
        status=status,
        start_time=span.start_ns,
        end_time=span.end_ns,
        instrumentation_scope=SCOPE,
    )


class OtlpExport:
    def __init__(
        self,
        endpoint: str,
        *,
        service_name: str = "bounded",
        headers: dict[str, str] | None = None,
        exporter: SpanExporter | None = None,
    ):
        self.resource = Resource.create({"service.name": service_name})
        self._exporter = exporter or OTLPSpanExporter(
            endpoint=endpoint, headers=headers or None, timeout=10
        )
        self._processor = BatchSpanProcessor(self._exporter, schedule_delay_millis=500)

    def __call__(self, records: Sequence[TraceRecord]) -> None:
        for span in to_sdk(records, self.resource):
            self._processor.on_end(span)

    def flush(self, timeout_s: float = 10.0) -> bool:
        return self._processor.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self._processor.shutdown()
