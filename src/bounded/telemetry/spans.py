"""A request's spans, recorded as plain objects on the hot path.

    rec = Recorder(trace_id)
    span = rec.open("auth")          # a child of whatever span is open now
    ...
    rec.close(span)
    rec.finish()                     # the root span ends; rec.spans holds them all

Why not the SDK's tracer on the hot path: an SDK span starts with a context attach, a
sampler call, a lock and an attribute mapping with limits; a request here has ten or more
spans. These are slotted objects with integer clocks; :mod:`bounded.telemetry.export` turns
stored spans into SDK spans (``ReadableSpan``) only when they are sent over OTLP. The
figures are in docs/observability.md (bench/gateway_overhead.py --telemetry).

Times: one wall clock reading per request, then ``perf_counter_ns`` readings, moved to the
epoch by that one offset when the trace is sealed (after the response), so spans of one
request never disagree with each other when the wall clock steps.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Attributes = dict[str, Any]
_rand = random.Random()  # span ids need to be unique, not secret
_clock = time.perf_counter_ns
# A forked process (``bounded serve --workers N``) would otherwise draw the same ids as its
# siblings: the module-level ``random`` functions are reseeded at fork, instances are not.
os.register_at_fork(after_in_child=_rand.seed)


# Ids begin with the time, so that the tables indexing them (traces and trace_texts by root
# span id and trace id, the ledger and outcomes by trace id) insert near the end of each
# index instead of on a random page of it. With random ids a trace's SQLite inserts cost
# 62 µs of CPU on a new store and 108-118 µs past 150,000 traces, growing with the store
# as its indexes outgrew the page cache; with time-first ids, 48-54 µs up to 300,000
# (bench/trace_writer.py --grow; docs/observability.md, the last section).
_TICK_SHIFT = 30  # a span id's clock ticks every 2**30 ns (1.07 s) ...
_TICK_MASK = 0xFFFF  # ... and wraps every 19.5 hours: 48 bits are left random


def new_span_id(epoch_ns: int | None = None) -> str:
    """16 hex digits: four of a clock (``epoch_ns``, default now) that ticks about once a
    second and wraps every 19.5 hours, then 48 random bits. The wrap spreads ids over the
    whole range as random ones are, so collisions are as rare as among 64 random bits;
    the clock keeps one second's ids together."""
    tick = ((time.time_ns() if epoch_ns is None else epoch_ns) >> _TICK_SHIFT) & _TICK_MASK
    return f"{(tick << 48 | _rand.getrandbits(48)) or 1:016x}"


def new_trace_id() -> str:
    """32 hex digits: the time in seconds since the epoch (8), then 96 random bits, the
    layout of AWS X-Ray's trace ids (OpenTelemetry's ``AwsXRayIdGenerator``). Trace ids
    name requests to the API (outcomes, traces), so their random part comes from
    :mod:`secrets`, as before."""
    return f"{time.time_ns() // 1_000_000_000 & 0xFFFFFFFF:08x}{secrets.token_hex(12)}"


def otel_trace_id(trace_id: str) -> str:
    """The 32-hex OpenTelemetry trace id for a bounded trace id (a client's own id that
    is not 32 hex digits is hashed to one, the same way every time)."""
    if len(trace_id) == 32:
        try:
            if int(trace_id, 16):
                return trace_id.lower()
        except ValueError:
            pass
    return hashlib.sha256(trace_id.encode()).hexdigest()[:32]


@dataclass(slots=True)
class Span:
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int  # unix epoch nanoseconds
    end_ns: int = 0
    status: str = "ok"  # ok | error
    kind: str = "internal"  # internal | server | client
    attributes: Attributes = field(default_factory=dict)
    # Recording only, never stored: the parent (its id is given at seal), and whether
    # this span is a stage that handed its call on without awaiting (it ends with its child).
    up: Span | None = field(default=None, repr=False, compare=False)
    through: bool = False


class Recorder:
    """The spans of one request; the root span is open from creation to :meth:`finish`.

    On the request path a span is a name and two ``perf_counter_ns`` readings: no id, no
    wall-clock arithmetic, and an upstream attempt is only noted (the route's span and its
    call). :meth:`seal`, after the response has gone, gives every span its id and its
    parent's, moves the times to epoch nanoseconds and builds the attempt spans. Measured
    under 64-concurrent load (py-spy): span ids alone were 1.7% of the event loop's
    samples, the attempt spans' attributes 2%.
    """

    __slots__ = (
        "_epoch_ns", "_mono", "_perf_ns", "current", "passes", "reply", "root", "routed",
        "spans",
    )  # fmt: skip

    def __init__(self, trace_id: str, name: str = "request"):
        self._epoch_ns = time.time_ns()
        self._perf_ns = _clock()
        self._mono = time.monotonic()
        self.root = Span("", None, name, self._perf_ns, kind="server")
        self.spans: list[Span] = [self.root]
        self.current = self.root
        self.passes: list[Any] = []  # every Call that reached settle (a repair is its own)
        self.reply: dict[str, Any] = {}  # what the answer said: id, model, finish, text
        # (route span, its call): the call's attempts become spans under it at seal
        self.routed: list[tuple[Span, Any]] = []

    def at_monotonic(self, t: float) -> int:
        """A ``time.monotonic()`` reading (the router's clock) on this recorder's clock."""
        return self._perf_ns + int((t - self._mono) * 1e9)

    def open(self, name: str, attributes: Attributes | None = None) -> Span:
        parent = self.current
        span = Span("", None, name, _clock(), 0, "ok", "internal", attributes or {}, parent)
        self.spans.append(span)
        self.current = span
        return span

    def close(self, span: Span) -> None:
        """End ``span``, and with it every open span above it that only handed its call
        on (:meth:`through`): nothing of theirs ran after it."""
        span.end_ns = end = _clock()
        up = span.up or self.root
        while up.through and not up.end_ns:
            up.end_ns = end
            if span.status == "error":  # the error went out through it
                up.status = "error"
            up = up.up or self.root
        self.current = up

    def through(self, span: Span) -> None:
        """``span`` is a stage that handed its call on without a frame of its own (see
        :mod:`bounded.gateway.call`): it stays open until the span opened under it ends."""
        span.through = True
        if self.current is span:  # it opened nothing under it: it is over already
            self.close(span)

    def add(
        self, name: str, parent: Span, start_ns: int, end_ns: int, kind: str = "internal"
    ) -> Span:
        """A span already over (an upstream attempt the router timed), on this clock."""
        span = Span("", None, name, start_ns, end_ns, kind=kind, up=parent)
        self.spans.append(span)
        return span

    def finish(self) -> None:
        self.root.end_ns = _clock()

    def seal(self, attempts: AttemptSpans | None = None) -> list[Span]:
        """The spans as stored: ids given, times in epoch nanoseconds, parents linked.
        ``attempts(rec, span, call)`` adds the attempt spans of each routed call under its
        route span, in place: they follow it in the list, as they followed it in time."""
        if attempts is not None and self.routed:
            spans, self.spans = self.spans, []
            routes = {id(span): call for span, call in self.routed}
            for span in spans:
                self.spans.append(span)
                call = routes.get(id(span))
                if call is not None:
                    attempts(self, span, call)
        self.routed = []
        shift = self._epoch_ns - self._perf_ns
        for span in self.spans:
            span.span_id = new_span_id(self._epoch_ns)
            span.start_ns += shift
            if span.end_ns:
                span.end_ns += shift
        for span in self.spans:
            if span.up is not None:
                span.parent_id = span.up.span_id
                span.up = None  # the open-span chain is over; the stored link is the id
        return self.spans


AttemptSpans = Callable[[Recorder, Span, Any], None]  # (recorder, route span, its call)


# A call's ``spans`` when it gets no recorder: not sampled (``sample_ratio``, or traces off),
# or sampled but past ``max_traces_per_s`` (then traced after all if it fails: ``since``).
NOT_TRACED = Recorder.__new__(Recorder)
OVER_RATE = Recorder.__new__(Recorder)


def since(trace_id: str, name: str, started: float) -> Recorder:
    """A recorder begun after the fact, its root span starting at ``started`` (a
    ``perf_counter()`` reading): a request past the rate that failed is traced by its
    root span alone."""
    rec = Recorder(trace_id, name)
    rec.root.start_ns = int(started * 1e9)  # perf_counter and perf_counter_ns: one clock
    rec.reply["partial"] = True  # the root says so: bounded.trace.partial
    return rec


class PerSecond:
    """A token bucket for ``max_traces_per_s``: ``rate`` takes a second, and at most a
    second's worth (at least one) saved up while fewer came. One per worker process."""

    __slots__ = ("_at", "_level", "_rate")

    def __init__(self) -> None:
        self._rate = self._level = self._at = 0.0

    def take(self, rate: float) -> bool:
        now = time.monotonic()
        if rate != self._rate:  # the first call, or a reload changed it: start full
            self._rate, self._level, self._at = rate, max(rate, 1.0), now
        level = self._level + (now - self._at) * rate
        cap = rate if rate > 1.0 else 1.0
        if level > cap:
            level = cap
        self._at = now
        if level >= 1.0:
            self._level = level - 1.0
            return True
        self._level = level
        return False


def error_type(exc: BaseException) -> str:
    """``error.type``: bounded's code for its own errors, else the class name."""
    code = getattr(exc, "kind", None) or getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    return type(exc).__qualname__


def sampled(trace_id: str, ratio: float) -> bool:
    """Head sampling by trace id: every call of one client trace id is kept or none is."""
    if ratio >= 1:
        return True
    if ratio <= 0:
        return False
    digest = hashlib.blake2b(trace_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < ratio * 2**64
