"""Observability: traces by the OpenTelemetry GenAI conventions, Prometheus metrics,
stored text under each feature's privacy policy, and its retention.

spans      a request's spans, recorded cheaply on the hot path (plain objects, no SDK)
tracing    the wrapper that gives every stage of the request path its span
store      traces (a row per request, its spans inside) and redacted text, written in batches
spanlist   a request's spans as one compact JSON value, and back
export     stored spans as OpenTelemetry SDK spans, sent over OTLP HTTP/protobuf
metrics    Prometheus metrics from ledger rows and finished requests (multiprocess-safe)
retention  the background job that deletes expired text and spans
api        GET /v1/traces, /v1/traces/{trace_id}, /metrics
"""
