"""The gateway's telemetry: one object holding the metrics, the trace writer and exporter.

    telemetry = Telemetry(db.url, config.telemetry)
    meter = Meter(accountant, MeteredLedger(ledger, telemetry.metrics), counter)
    pipeline = Pipeline(with_spans(stages, telemetry))
    ...
    telemetry.close()

``finish`` runs when a call closes (its response sent): it ends the root span and queues
the rest, which runs on the loop a moment later (:mod:`bounded.telemetry.onloop`): it
counts the request, seals its spans (ids, epoch times, the upstream attempts), names and
attributes the root, and hands the record to the writer's thread, which stores it.
The OTLP exporter is built from the start-up config (``telemetry.otlp_endpoint``);
sampling and text policy are read from the runtime current for each request, so a reload
changes them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bounded.economics.ledger import to_e10
from bounded.telemetry.attributes import (
    attempt_attributes,
    operation_name,
    request_model,
    root_attributes,
)
from bounded.telemetry.config import TelemetryConfig, stores_text
from bounded.telemetry.metrics import Metrics
from bounded.telemetry.spans import PerSecond, Recorder, Span, since
from bounded.telemetry.store import TraceRecord, TraceWriter, trace_store_url

log = logging.getLogger("bounded.telemetry")


class Telemetry:
    def __init__(self, url: str, config: TelemetryConfig, metrics: Metrics | None = None):
        """``url``: the store's; traces go to :func:`trace_store_url` of it."""
        self.url = trace_store_url(url)
        self.enabled = config.enabled
        self.metrics = metrics or Metrics()
        self.metrics.enabled = config.enabled
        self.export: Any = None
        if config.otlp_endpoint:
            from bounded.telemetry.export import OtlpExport

            self.export = OtlpExport(
                config.otlp_endpoint,
                service_name=config.service_name,
                headers=dict(config.otlp_headers),
            )
        self.writer = TraceWriter(self.url, export=self.export)
        # telemetry.max_traces_per_s, this process's share: requests, and failures past it.
        self._rate = PerSecond()
        self._failures = PerSecond()
        # Metrics are counted the same way, after the response; a scrape flushes first.
        self.metrics.defer = self.writer.put
        self.metrics.before_render = self.writer.flush

    def keeps_text(self, call: Any) -> bool:
        target = getattr(call, "target", None)
        feature = None if target is None else target.feature
        return feature is not None and stores_text(feature.risk_tier, feature.telemetry)

    def within_rate(self, call: Any, rate: float | None) -> bool:
        """May this sampled request be traced (``max_traces_per_s``)? A client that sent
        its own ``x-bounded-trace-id`` asked for this trace: yes, whatever the rate."""
        if rate is None or self._rate.take(rate):
            return True
        return bool(call.request.headers.get("x-bounded-trace-id") == call.trace_id)

    def late_failure(self, call: Any) -> Recorder | None:
        """A root-only recorder for a request past the rate that failed, within the
        failures' own allowance (None past that too)."""
        rate = call.runtime.config.telemetry.max_traces_per_s
        if rate is not None and not self._failures.take(rate):
            return None
        return since(call.trace_id, operation_name(call), call.started)

    def finish(self, call: Any, rec: Recorder | None) -> None:
        """The call is done: its root span ends now. Naming, attributing and counting it
        happen on the loop a moment later, storing it in the writer's thread (nothing
        changes a closed call)."""
        if rec is not None:
            rec.finish()
        self.writer.put(lambda: self._record(call, rec))

    def _record(self, call: Any, rec: Recorder | None) -> TraceRecord | None:
        self.metrics.finished(call)
        if rec is None:
            return None
        try:
            return self._trace_record(call, rec)
        finally:
            # call.spans is rec and rec.passes holds call: a cycle that would leave the
            # request's objects to the cyclic collector. Nothing reads them after this.
            rec.passes = []
            call.spans = None

    def _trace_record(self, call: Any, rec: Recorder) -> TraceRecord | None:
        spans = rec.seal(_attempt_spans)
        root = rec.root
        model = request_model(call)
        if model is not None:
            root.name = f"{root.name} {model}"
        root.attributes = root_attributes(call, rec.passes, rec.reply)
        # What the client got: the error the first stage raised, unless the ledger row
        # says better (499 for a client gone). A failed pass of a repair or escalation
        # is a fork whose row holds its status, so the root call may still say 200.
        raised = rec.reply.get("status")
        status = call.status if raised is None or (call.recorded and call.status >= 400) else raised
        root.attributes["http.response.status_code"] = status
        if status >= 400 or call.error_class:
            root.status = "error"
        error = None
        if root.status == "error":
            error = call.error_class if raised is None or call.status >= 400 else None
            error = error or rec.reply.get("error") or _first_error(rec)
        if error is not None:
            root.attributes["error.type"] = error
        if rec.reply.get("partial"):
            root.attributes["bounded.trace.partial"] = True
        attrs = root.attributes
        target = getattr(call, "target", None)
        feature = target.name if target is not None and target.feature is not None else None
        record = TraceRecord(
            trace_id=call.trace_id,
            root=root,
            spans=spans,
            feature=feature,
            team=attrs.get("bounded.team"),
            model=model,
            deployment=attrs.get("bounded.deployment"),
            arm=attrs.get("bounded.arm"),
            http_status=status,
            error_class=error,
            input_tokens=attrs.get("gen_ai.usage.input_tokens", 0),
            output_tokens=attrs.get("gen_ai.usage.output_tokens", 0),
            cost_e10=to_e10(call.cost),
        )
        if feature is not None and self.keeps_text(call):
            record.prompt = _prompt_text(call)
            record.completion = rec.reply.get("text")
            days = call.target.feature.telemetry.text_retention_days
            record.text_expires_at = time.time() + days * 86400
        return record

    def flush(self, timeout_s: float = 10.0) -> bool:
        done = self.writer.flush(timeout_s)
        if self.export is not None:
            done = self.export.flush(timeout_s) and done
        return done

    def close(self) -> None:
        self.writer.close()
        if self.export is not None:
            self.export.shutdown()


def _attempt_spans(rec: Recorder, route: Span, call: Any) -> None:
    """Under a route stage's span, a client span per upstream attempt its call made."""
    for deployment, started, ended, error in call.trace.tries:
        name, attrs = attempt_attributes(call, deployment, error)
        span = rec.add(
            name, route, rec.at_monotonic(started), rec.at_monotonic(ended), kind="client"
        )
        span.attributes = attrs
        if error is not None:
            span.status = "error"


def _first_error(rec: Recorder) -> str | None:
    return next(
        (e for s in rec.spans if s.status == "error" and (e := s.attributes.get("error.type"))),
        None,
    )


def _prompt_text(call: Any) -> str | None:
    """The messages as the upstream got them (input guards have already redacted what
    their policy redacts; the writer redacts everything again before storing)."""
    upstream = getattr(call, "upstream", None)
    if not isinstance(upstream, dict):
        return None
    messages = upstream.get("messages")
    if isinstance(messages, list):
        lines = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            lines.append(f"{message.get('role', '?')}: {content or ''}")
        return "\n".join(lines)
    value = upstream.get("input")  # embeddings
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return None
