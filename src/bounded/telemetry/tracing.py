"""Every stage of the request path gets its span by wrapping, not by editing the stage.

    pipeline = Pipeline(with_spans([Authenticate(auth), ReadBody(check), ...], telemetry))

The first wrapped stage starts the request's :class:`~bounded.telemetry.spans.Recorder`
(the root span) and registers the finish for when the call closes: after a JSON reply
is sent, or a stream's last byte (so the root span covers the whole response, stream
included). Each stage's span covers the stage and everything after it (stages nest: a
stage gets ``next``), with ``bounded.self_ms`` its own share; a stage that answers with a
stream ends its span when it hands the stream back. The route stage's span has a child
per upstream attempt, from the router's own timings (built after the response, at
:meth:`~bounded.telemetry.spans.Recorder.seal`). Forks (a repair, an escalation, a
cascade step) share the recorder, so their stages nest under the validate span.

A request that is not sampled gets no recorder spans at all (one attribute read per
stage), but is still counted in the metrics when it finishes. Nor does one sampled past
``max_traces_per_s`` (a token bucket per worker), unless it fails: then its root span is
traced when it ends, from the call (``bounded.trace.partial``), within an allowance of
failures as large. A client's own ``x-bounded-trace-id`` is traced whatever the rate.
Why a rate and not only a ratio: tracing every request was over a third of a loaded worker's
CPU, and a trace store taking every request of a busy gateway grows by gigabytes an hour;
a gateway under a hundred requests a second per worker still traces every one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING

from bounded.gateway.call import Call, Json, Next, Pipeline, Reply, Stage
from bounded.gateway.streams import closing
from bounded.telemetry.attributes import operation_name
from bounded.telemetry.spans import (
    NOT_TRACED,
    OVER_RATE,
    Recorder,
    Span,
    error_type,
    sampled,
)

if TYPE_CHECKING:
    from bounded.telemetry.hub import Telemetry


def traced(pipeline: Pipeline, telemetry: Telemetry) -> Pipeline:
    """``pipeline`` with every stage in its span (see :func:`with_spans`); unchanged when
    telemetry is disabled (``telemetry.enabled: false``)."""
    if not telemetry.enabled:
        return pipeline
    return Pipeline(with_spans(pipeline.stages, telemetry))


def with_spans(stages: Sequence[Stage], telemetry: Telemetry) -> list[Stage]:
    """The same stages, each wrapped in its span; the first also starts the trace."""
    return [
        Traced(stage, telemetry, first=(i == 0)) if not isinstance(stage, Traced) else stage
        for i, stage in enumerate(stages)
    ]


class Traced:
    """One stage with its span around it (see the module docstring)."""

    def __init__(self, stage: Stage, telemetry: Telemetry, *, first: bool = False):
        self.stage = stage
        self.name = stage.name
        self._telemetry = telemetry
        self._first = first
        self._settles = stage.name == "settle"
        self._routes = stage.name == "route"

    def __call__(self, call: Call, next: Next) -> Awaitable[Reply]:
        rec = call.spans
        # A call's trace begins at the first stage it reaches: the pipeline's first, or
        # a later one for a shadow copy (bounded.releases.mirror), which is its own trace
        # row (arm shadow) under the same trace id, its answer kept like any other.
        began = rec is None
        if rec is None:
            rec = self._begin(call)
        if rec is NOT_TRACED or rec is OVER_RATE:
            if not self._first:
                return self.stage(call, next)
            return self._unsampled_first(call, next)
        if self._first or began:
            return self._awaited(call, next, rec)
        if self._settles:
            rec.passes.append(call)
        span = rec.open(self.name, {"bounded.stage": self.name})
        handed: list[Awaitable[Reply]] = []

        def hand_on(c: Call) -> Awaitable[Reply]:
            rest = next(c)
            handed.append(rest)
            return rest

        try:
            reply = self.stage(call, hand_on)
        except BaseException as exc:  # raised before it awaited anything
            _failed(span, exc)
            rec.close(span)
            raise
        if handed and reply is handed[-1]:
            # It handed the call on without a frame of its own: so does its span, which
            # ends with the span of the stage it handed to (a resume of this request then
            # passes one frame fewer; see bounded.gateway.call).
            rec.through(span)
            return reply
        return self._ended(call, rec, span, reply)

    async def _ended(self, call: Call, rec: Recorder, span: Span, reply: Awaitable[Reply]) -> Reply:
        try:
            return await reply
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            rec.close(span)
            if self._routes:
                rec.routed.append((span, call))  # its attempts: at seal

    async def _unsampled_first(self, call: Call, next: Next) -> Reply:
        try:
            return await self.stage(call, next)
        except BaseException as exc:
            self._refused(call, exc)
            if call.spans is OVER_RATE:
                late = self._telemetry.late_failure(call)
                if late is not None:
                    late.reply["status"] = getattr(exc, "status", 500)
                    late.reply["error"] = error_type(exc)
                    call.spans = late
            raise

    async def _awaited(self, call: Call, next: Next, rec: Recorder) -> Reply:
        """The first stage a call reaches: its span, and what the reply and any error
        tell the root span."""
        if self._settles:
            rec.passes.append(call)
        span = rec.open(self.name, {"bounded.stage": self.name})
        try:
            reply = await self.stage(call, next)
        except BaseException as exc:
            _failed(span, exc)
            rec.reply["status"] = getattr(exc, "status", 500)
            rec.reply["error"] = span.attributes["error.type"]
            if self._first:
                self._refused(call, exc)
            raise
        finally:
            rec.close(span)
            if self._routes:
                rec.routed.append((span, call))  # its attempts: at seal
        _keep_reply(rec, reply, self._telemetry.keeps_text(call))
        return reply

    def _refused(self, call: Call, exc: BaseException) -> None:
        if not call.recorded:  # failed before the ledger heard of it: a bad key or body
            self._telemetry.metrics.refused.labels(error_type(exc)).inc()

    def _begin(self, call: Call) -> Recorder:
        telemetry = self._telemetry
        config = call.runtime.config.telemetry
        if not config.traces or not sampled(call.trace_id, config.sample_ratio):
            rec = NOT_TRACED
        elif call.trace_kept and (
            # A shadow copy follows its live request, whose trace it pairs with.
            call.arm == "shadow" or telemetry.within_rate(call, config.max_traces_per_s)
        ):
            rec = Recorder(call.trace_id, operation_name(call))
        else:
            rec = OVER_RATE
            call.trace_kept = False
        call.spans = rec
        call.on_close(lambda: telemetry.finish(call, _kept(call, telemetry)))
        return rec


def _kept(call: Call, telemetry: Telemetry) -> Recorder | None:
    """The recorder to finish when the call closes: its own, a late one for a request past
    the rate that failed without raising (a stream cut short), or none."""
    rec = call.spans
    if rec is OVER_RATE:
        late = telemetry.late_failure(call) if call.status >= 400 or call.error_class else None
        if late is None:
            telemetry.metrics.traces_skipped.inc()
        return late
    return None if rec is NOT_TRACED or rec is None else rec


def _failed(span: Span, exc: BaseException) -> None:
    span.status = "error"
    span.attributes["error.type"] = error_type(exc)


def _keep_reply(rec: Recorder, reply: Reply, text: bool) -> None:
    """What the answer said (id, finish reasons; its text only where it may be stored)."""
    if reply.body is not None:
        body = reply.body
        rec.reply["id"] = body.get("id")
        choices = body.get("choices") or ()
        rec.reply["finish_reasons"] = [c.get("finish_reason") or "" for c in choices]
        if text:
            rec.reply["text"] = "\n".join(
                str((c.get("message") or {}).get("content") or "") for c in choices
            )
    elif reply.chunks is not None:
        reply.chunks = _watched(rec, reply.chunks, text)


async def _watched(rec: Recorder, chunks: AsyncIterator[Json], text: bool) -> AsyncIterator[Json]:
    parts: list[str] = []
    finish: list[str] = []
    try:
        async with closing(chunks):
            async for chunk in chunks:
                if "id" not in rec.reply and chunk.get("id"):
                    rec.reply["id"] = chunk["id"]
                for choice in chunk.get("choices") or ():
                    if choice.get("finish_reason"):
                        finish.append(choice["finish_reason"])
                    if text:
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            parts.append(content)
                yield chunk
    finally:
        rec.reply["finish_reasons"] = finish
        if text:
            rec.reply["text"] = "".join(parts)
