"""Prometheus metrics, counted from the ledger's own rows so the two always agree.

    metrics = Metrics()
    ledger = MeteredLedger(SqlLedger(db), metrics)   # every row also counts
    metrics.render()                                 # the text GET /metrics serves

Every ledger row (one per upstream pass: a repair or escalation is its own) counts in
``bounded_requests_total``, its latency and time to first token, its tokens and cost,
labelled by feature, deployment and release arm; the GenAI conventions' two client
metrics in their Prometheus form (``gen_ai_client_token_usage`` with ``{token}`` dropped,
``gen_ai_client_operation_duration_seconds``) with their own attribute names as labels.
A finished request adds its guard results and budget use; a request refused before it
reached the ledger (bad key, bad body) counts in ``bounded_refused_total`` by its code.
Breaker states are set at each scrape and after each request.

Several workers: when ``PROMETHEUS_MULTIPROC_DIR`` is set (``prepare_multiprocess`` sets it
in the parent before workers start), prometheus-client keeps each process's values in
files there and :meth:`Metrics.render` sums them; replicas are summed by Prometheus itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)

from bounded.economics.ledger import Ledger, LedgerRow
from bounded.telemetry.attributes import PROVIDER_NAMES

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The conventions' recommended bucket boundaries.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BREAKER_VALUES = {"closed": 0, "half-open": 1, "open": 2}
_ROW = ("feature", "deployment", "arm")
_GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def prepare_multiprocess(folder: Path) -> None:
    """For ``--workers N``: call in the parent before any worker starts (and before
    prometheus-client is first used there); the folder is emptied of a previous run's files."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters keep counting in the sum)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)


class Metrics:
    def __init__(self) -> None:
        if multiprocess() and values.ValueClass is values.MutexValue:
            # prometheus-client picks its value class when first imported; a supervisor that
            # imported it before prepare_multiprocess forks workers with the in-memory one.
            values.ValueClass = values.MultiProcessValue()
        self.enabled = True  # telemetry.enabled: false counts nothing
        # Where counting runs: at once by default; the gateway defers it past the response
        # (the trace writer's ``put``), and flushes that before a scrape.
        self.defer: Callable[[Callable[[], None]], None] = lambda work: work()
        self.before_render: Callable[[], object] = lambda: None
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "bounded_requests", "Ledger rows: upstream calls settled",
            (*_ROW, "operation", "outcome"), registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "bounded_errors", "Failed calls by error class", (*_ROW, "error_class"), registry=r
        )
        self.refused = Counter(
            "bounded_refused", "Requests refused before any ledger row", ("code",), registry=r
        )
        self.duration = Histogram(
            "bounded_request_duration_seconds", "Call latency to its last byte",
            (*_ROW, "operation"), buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "bounded_time_to_first_token_seconds", "Streamed calls: time to the first token",
            _ROW, buckets=TTFT_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter("bounded_tokens", "Tokens by type", (*_ROW, "type"), registry=r)
        self.cost = Counter("bounded_cost_usd", "Spend in USD", (*_ROW, "team"), registry=r)
        self.validation = Counter(
            "bounded_validation", "Output validation verdicts", ("feature", "result"), registry=r
        )
        self.guards = Counter(
            "bounded_guard_hits", "Guard findings acted on",
            ("feature", "place", "guard", "action"), registry=r,
        )  # fmt: skip
        self.budget = Counter(
            "bounded_budget_spend_usd", "Spend charged against each budget", ("scope", "period"),
            registry=r,
        )  # fmt: skip
        self.traces_skipped = Counter(
            "bounded_traces_skipped",
            "Requests counted but not traced: past telemetry.max_traces_per_s",
            registry=r,
        )
        self.cache = Counter(
            "bounded_cache_lookups", "Cache lookups by result", ("feature", "result"), registry=r
        )
        self.breaker = Gauge(
            "bounded_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
            ("deployment",), multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.genai_tokens = Histogram(
            "gen_ai_client_token_usage", "Number of input and output tokens used",
            (*_GENAI, "gen_ai_token_type", *_ROW), buckets=TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.genai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds", "GenAI operation duration",
            (*_GENAI, "error_type", *_ROW), buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip

    # -- recording ---------------------------------------------------------------------

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: a row touches about ten series, and a
        dict lookup is a fraction of what ``labels`` does each time (checks, str, a lock)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 100_000:  # label values are config names: bounded
                self._children.clear()
            child = self._children[key] = metric.labels(*labels)
        return child

    def row(self, row: LedgerRow, provider_kind: str | None = None) -> None:
        """Count one ledger row (called as it is recorded); ``provider_kind`` is the kind
        (openai, anthropic, local) of the provider the row names, for gen_ai_provider_name."""
        labels = (row.feature or "", row.deployment or "", row.arm or "stable")
        failed = row.status >= 400
        self._child(self.requests, *labels, row.operation, "error" if failed else "ok").inc()
        if failed:
            self._child(self.errors, *labels, row.error_class or str(row.status)).inc()
        seconds = row.latency_ms / 1000
        self._child(self.duration, *labels, row.operation).observe(seconds)
        if row.ttft_ms is not None:
            self._child(self.ttft, *labels).observe(row.ttft_ms / 1000)
        for kind in ("input", "output", "cached", "reasoning"):
            count = getattr(row, f"{kind}_tokens")
            if count:
                self._child(self.tokens, *labels, kind).inc(count)
        if row.cost_e10:
            self._child(self.cost, *labels, row.team or "").inc(row.cost_e10 / 1e10)
        if row.validation:
            self._child(self.validation, row.feature or "", row.validation).inc()
        if row.deployment is None and not row.attempts:
            return  # no upstream was called: no GenAI operation happened
        genai = (
            row.operation,
            PROVIDER_NAMES.get(provider_kind or "", provider_kind or row.provider or ""),
            row.model or "",
        )
        self._child(self.genai_duration, *genai, row.error_class or "", *labels).observe(seconds)
        if not failed or row.input_tokens or row.output_tokens:
            self._child(self.genai_tokens, *genai, "input", *labels).observe(row.input_tokens)
            self._child(self.genai_tokens, *genai, "output", *labels).observe(row.output_tokens)

    def finished(self, call: Any) -> None:
        """A request is done: guard results, budget use, breaker state, refusals."""
        feature = ""
        target = getattr(call, "target", None)
        if target is not None and target.feature is not None:
            feature = target.name
        for place, hit in call.guard_hits:
            self._child(self.guards, feature, place, hit.spec.kind, hit.spec.action).inc()
        hold = call.hold
        if hold is not None and call.cost:
            for key, _ in hold.budgets:
                # An accountant's key: "[prefix budget:]scope|period|start".
                scope, _, rest = key.rpartition("budget:")[2].partition("|")
                self._child(self.budget, scope, rest.partition("|")[0]).inc(float(call.cost))
        if call.deployment:
            breaker = call.runtime.router.breakers.get(call.deployment)
            if breaker is not None:
                self._child(self.breaker, call.deployment).set(BREAKER_VALUES[breaker.state.value])

    def breakers(self, states: dict[str, dict[str, object]]) -> None:
        for name, snapshot in states.items():
            self.breaker.labels(name).set(BREAKER_VALUES.get(str(snapshot["state"]), 0))

    # -- scraping ----------------------------------------------------------------------

    def render(self) -> bytes:
        """The exposition text (blocks while counts queued before it land: call it from a
        thread, not the event loop)."""
        self.before_render()
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MeteredLedger:
    """A ledger that also counts each row it records (the same rows, so the same sums)."""

    def __init__(
        self,
        inner: Ledger,
        metrics: Metrics,
        provider_kind: Callable[[str], str | None] = lambda name: None,
    ):
        self.inner = inner
        self.metrics = metrics
        self._kind = provider_kind

    async def record(self, row: LedgerRow) -> None:
        await self.inner.record(row)
        if self.metrics.enabled:
            kind = self._kind(row.provider) if row.provider else None
            self.metrics.defer(lambda: self.metrics.row(row, kind))

    async def record_alert(
        self, ts: float, scope: str, period: str, amount: Decimal, trace_id: str
    ) -> None:
        await self.inner.record_alert(ts, scope, period, amount, trace_id)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        # Anything else a caller reaches for (enqueue, the checkpointer) is the inner one's.
        return getattr(self.inner, name)
