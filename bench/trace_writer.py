"""The trace writer's CPU per trace, in process: spans as rows (before migration 0008) against
spans as one JSON value in the request's row (now), on the same SQLite schema.

    .venv/bin/python bench/trace_writer.py [--traces 20000] [--batch 250] [--rounds 3]

A typical request's trace is 12 spans (the root, ten nested stages, one upstream attempt)
with the root's GenAI attributes; "with text" adds a prompt and completion the policy keeps
(redacted by the writer, as the gateway's are). Each variant writes ``--traces`` traces in
batches of ``--batch`` (one transaction each, what 0.25 s of a busy gateway gathers) into a
fresh trace store (``synchronous=OFF``, as the writer opens it), timed by ``thread_time``
of the one thread doing the work. "before" is the pre-0008 write, copied here: a row per
span with its attributes as JSON, ``bounded.self_ms`` computed in the writer. "after" is
``TraceWriter._write`` itself. Rounds alternate the variants; the median round counts.
Also printed: the store's bytes per trace, and the cost of encoding the spans alone.

``--grow N`` (e.g. 300000) also times the SQL alone (the transaction, rows made beforehand)
of N traces with text into one store as it grows, per sixth of N, for two id schemes: random
ids (before 2026-12-03 night: 64 random bits per span id, 32 random hex digits per trace id)
and the ids the gateway makes now (time first: :func:`bounded.telemetry.spans.new_span_id`,
:func:`~bounded.telemetry.spans.new_trace_id`). Random ids insert on a random page of each
index that holds them, which outgrows SQLite's page cache as the store grows.
The last line of stdout is one JSON object with every figure; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bounded.store.db import Database
from bounded.telemetry import spanlist
from bounded.telemetry.spans import Span, new_span_id
from bounded.telemetry.store import (
    _INSERT_TEXT,
    _INSERT_TRACE,
    TraceRecord,
    TraceWriter,
    _trace_row,
)

STAGES = ("auth", "body", "resolve", "prompt", "guard_input", "context", "validate", "settle",
          "admit", "route")  # fmt: skip
PROMPT = (
    "system: You answer questions about orders for Example Corp. Be brief and cite the"
    " order number.\ncontext: Order 4471 shipped on 2026-11-28 by ground; refunds take 5 to"
    " 7 business days after the return is scanned.\nuser: Hi, I am Dana Whitfield, my email"
    " is dana.whitfield@example.com and my phone +1 415 555 0199. Where is order 4471 and"
    " when will the refund for order 4470 arrive?"
)
COMPLETION = (
    "Order 4471 shipped on 2026-11-28 by ground and should arrive within the week. The"
    " refund for order 4470 takes 5 to 7 business days once the return is scanned; we will"
    " email dana.whitfield@example.com when it is issued."
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def typical(i: int, text: bool) -> TraceRecord:
    t0 = time.time_ns()
    root = Span(new_span_id(), None, "chat support-answer", t0, t0 + 41_000_000, kind="server")
    root.attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "support-answer",
        "bounded.feature": "support-answer", "bounded.risk_tier": "medium",
        "bounded.prompt.version": "v3", "bounded.team": "support",
        "gen_ai.request.max_tokens": 256, "gen_ai.request.temperature": 0.2,
        "bounded.arm": "stable", "gen_ai.provider.name": "openai",
        "bounded.deployment": "gpt-4o-mini", "gen_ai.response.id": f"chatcmpl-{i:024x}",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": 412,
        "gen_ai.usage.output_tokens": 57, "bounded.cost_usd": 9.6e-05, "bounded.attempts": 1,
        "bounded.validation": "passed", "http.response.status_code": 200,
    }  # fmt: skip
    spans, parent, start = [root], root, t0 + 20_000
    for n, name in enumerate(STAGES):
        span = Span(new_span_id(), parent.span_id, name, start, t0 + 40_900_000 - n * 9_000)
        span.attributes = {"bounded.stage": name}
        spans.append(span)
        parent, start = span, start + 30_000
    attempt = Span(new_span_id(), parent.span_id, "chat gpt-4o-mini", start + 5_000,
                   t0 + 40_000_000, kind="client")  # fmt: skip
    attempt.attributes = {
        "gen_ai.operation.name": "chat", "bounded.deployment": "gpt-4o-mini",
        "gen_ai.request.model": "gpt-4o-mini", "server.address": "api.openai.com",
        "gen_ai.provider.name": "openai",
    }  # fmt: skip
    spans.append(attempt)
    record = TraceRecord(
        trace_id=f"{i:032x}", root=root, spans=spans, feature="support-answer", team="support",
        model="support-answer", deployment="gpt-4o-mini", arm="stable", http_status=200,
        error_class=None, input_tokens=412, output_tokens=57, cost_e10=960_000,
    )  # fmt: skip
    if text:
        record.prompt, record.completion = PROMPT, COMPLETION
        record.text_expires_at = time.time() + 7 * 86400
    return record


# -- before 0008, as store.py wrote it ----------------------------------------------------

_OLD_TRACE = (
    "INSERT INTO traces (span_id, trace_id, ts, duration_ms, name, feature, team, model,"
    " deployment, arm, status, http_status, error_class, input_tokens, output_tokens,"
    " cost_e10, spans) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OLD_SPAN = (
    "INSERT INTO spans (trace_id, span_id, parent_id, name, start_ns, end_ns, status,"
    " attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_OLD_TEXT = (
    "INSERT INTO trace_texts (span_id, trace_id, ts, feature, prompt, completion, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _old_self_times(spans: list[Span]) -> None:
    children: dict[str | None, int] = {}
    for span in spans:
        children[span.parent_id] = children.get(span.parent_id, 0) + span.end_ns - span.start_ns
    for span in spans:
        if "bounded.stage" in span.attributes:
            own = span.end_ns - span.start_ns - children.get(span.span_id, 0)
            span.attributes["bounded.self_ms"] = round(max(0, own) / 1e6, 3)


def _old_trace_row(r: TraceRecord) -> tuple[object, ...]:
    root = r.root
    return (
        root.span_id, r.trace_id, root.start_ns / 1e9, (root.end_ns - root.start_ns) / 1e6,
        root.name, r.feature, r.team, r.model, r.deployment, r.arm, root.status,
        r.http_status, r.error_class, r.input_tokens, r.output_tokens, r.cost_e10, len(r.spans),
    )  # fmt: skip


def _old_span_row(trace_id: str, s: Span) -> tuple[object, ...]:
    attrs = {**s.attributes, "bounded.span.kind": s.kind}
    return (
        trace_id, s.span_id, s.parent_id, s.name, s.start_ns, s.end_ns, s.status,
        orjson.dumps(attrs, option=orjson.OPT_NON_STR_KEYS).decode(),
    )  # fmt: skip


def old_write(writer: TraceWriter, db: Database, batch: list[TraceRecord]) -> None:
    for r in batch:
        _old_self_times(r.spans)
    texts = writer._text_rows([r for r in batch if r.text_expires_at is not None])
    with db.transaction():
        db.executemany(_OLD_TRACE, [_old_trace_row(r) for r in batch])
        db.executemany(_OLD_SPAN, [_old_span_row(r.trace_id, s) for r in batch for s in r.spans])
        if texts:
            db.executemany(_OLD_TEXT, texts)


# -- the runs ----------------------------------------------------------------------------

Write = Callable[[TraceWriter, Database, list[TraceRecord]], None]
VARIANTS: dict[str, Write] = {
    "before": old_write,
    "after": lambda writer, db, batch: writer._write(db, batch),
}


def run_once(variant: str, text: bool, traces: int, batch: int, folder: Path) -> dict[str, float]:
    url = f"sqlite:///{folder / f'{variant}-{int(text)}-{time.monotonic_ns()}.db'}"
    writer = TraceWriter(url, interval_s=3600)  # its thread idles: we call the write here
    db = writer._open()
    records = [typical(i, text) for i in range(traces)]
    batches = [records[i : i + batch] for i in range(0, traces, batch)]
    write = VARIANTS[variant]
    gc.collect()
    began = time.thread_time()
    for chunk in batches:
        write(writer, db, chunk)
    cpu = time.thread_time() - began
    stored = db.execute("SELECT COUNT(*) AS n FROM traces")[0]["n"]
    assert stored == traces, (variant, stored)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count")[0][0] * db.execute("PRAGMA page_size")[0][0]
    db.close()
    writer.close()
    return {"cpu_us": cpu / traces * 1e6, "bytes": pages / traces}


def encode_cost(traces: int) -> float:
    records = [typical(i, False) for i in range(traces)]
    began = time.thread_time()
    for r in records:
        spanlist.encode(r.spans)
    return (time.thread_time() - began) / traces * 1e6


def _random_ids() -> tuple[str, str]:
    return secrets.token_hex(16), f"{secrets.randbits(64) or 1:016x}"


def _time_first_ids() -> tuple[str, str]:
    # Imported here: harness_prefill imports this module beside older copies of bounded.
    from bounded.telemetry.spans import new_trace_id

    return new_trace_id(), new_span_id()


ID_SCHEMES: dict[str, Callable[[], tuple[str, str]]] = {
    "random_ids": _random_ids,
    "time_first_ids": _time_first_ids,
}


def grow(scheme: str, traces: int, batch: int, folder: Path) -> list[float]:
    """SQL CPU per trace (µs) for each sixth of ``traces`` written into one growing store."""
    writer = TraceWriter(f"sqlite:///{folder / f'grow-{scheme}.db'}", interval_s=3600)
    db = writer._open()
    make_ids = ID_SCHEMES[scheme]
    template = [typical(i, True) for i in range(batch)]
    slice_size, spent, done = traces // 6, 0.0, 0
    slices: list[float] = []
    while done < traces:
        rows: list[tuple[object, ...]] = []
        texts: list[tuple[object, ...]] = []
        for r in template:
            now = time.time_ns()
            r.root.end_ns, r.root.start_ns = now + r.root.end_ns - r.root.start_ns, now
            r.trace_id, r.root.span_id = make_ids()
            rows.append(_trace_row(r))
            texts.append((r.root.span_id, r.trace_id, now / 1e9, r.feature, PROMPT, COMPLETION,
                          time.time() + 7 * 86400))  # fmt: skip
        began = time.thread_time()
        with db.transaction():
            db.executemany(_INSERT_TRACE, rows)
            db.executemany(_INSERT_TEXT, texts)
        spent += time.thread_time() - began
        done += len(rows)
        if done >= slice_size * (len(slices) + 1):
            slices.append(round(spent / slice_size * 1e6, 1))
            spent = 0.0
    db.close()
    writer.close()
    return slices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grow", type=int, default=0, help="traces into a growing store")
    args = parser.parse_args()
    figures: dict[str, Any] = {
        "traces": args.traces, "batch": args.batch, "rounds": args.rounds, "spans": 12,
        "python": platform.python_version(),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bounded-trace-bench-") as tmp:
        for text in (False, True):
            label = "text" if text else "no_text"
            seen: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
            for n in range(args.rounds):
                for variant in VARIANTS:
                    got = run_once(variant, text, args.traces, args.batch, Path(tmp))
                    seen[variant].append(got)
                    log(f"{label} round {n + 1} {variant}: {got['cpu_us']:.1f} µs/trace")
            for variant, runs in seen.items():
                figures[f"{label}_{variant}_cpu_us"] = round(
                    statistics.median(r["cpu_us"] for r in runs), 1
                )
                figures[f"{label}_{variant}_bytes"] = round(
                    statistics.median(r["bytes"] for r in runs)
                )
            before, after = figures[f"{label}_before_cpu_us"], figures[f"{label}_after_cpu_us"]
            figures[f"{label}_ratio"] = round(after / before, 3)
            figures[f"{label}_saved_us"] = round(before - after, 1)
    figures["encode_us"] = round(encode_cost(args.traces), 2)
    print(f"writer CPU per 12-span trace, {args.traces} traces in batches of {args.batch}:")
    for label in ("no_text", "text"):
        print(
            f"  {label:8} before {figures[f'{label}_before_cpu_us']:7.1f} µs"
            f"  after {figures[f'{label}_after_cpu_us']:7.1f} µs"
            f"  ratio {figures[f'{label}_ratio']:.3f}"
            f"  store bytes/trace {figures[f'{label}_before_bytes']} ->"
            f" {figures[f'{label}_after_bytes']}"
        )
    print(f"  encoding the spans alone (orjson, one call): {figures['encode_us']} µs/trace")
    if args.grow:
        with tempfile.TemporaryDirectory(prefix="bounded-trace-grow-") as tmp:
            step = args.grow // 6
            print(f"SQL CPU per trace with text as the store grows ({step:,} traces per column):")
            for scheme in ID_SCHEMES:
                log(f"growing a store to {args.grow:,} traces, {scheme}")
                slices = grow(scheme, args.grow, args.batch, Path(tmp))
                figures[f"grow_{scheme}_us"] = slices
                print(f"  {scheme:15} " + "  ".join(f"{us:6.1f}" for us in slices) + "  µs")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
