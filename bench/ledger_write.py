"""The cost ledger's own cost: ``SqlLedger.record`` on a temp SQLite store, no gateway.

    .venv/bin/python bench/ledger_write.py [--rows N] [--writers W] [--concurrent-rows M]

Two phases on one store (WAL, ``synchronous=NORMAL``, the checkpoint thread running, as
in the gateway):

* sequential: one writer awaits ``record`` row after row, so every row is its own commit
  (the per-request cost on an idle gateway): latency p50/p99/p99.9/max, plus the time the
  group commit itself holds the event loop (``_flush``: one ``BEGIN IMMEDIATE``,
  ``executemany``, ``COMMIT``);
* concurrent: ``--writers`` coroutines record at once (as concurrent requests do), so rows
  recorded in one event-loop turn share a commit: rows/s, commits, rows per commit, and
  the per-record latency.

The event loop is uvloop with the gateway's GC thresholds. Rows look like the gateway's
(priced, 200, non-streamed). At the end the rows are counted back from the database. The
last line of stdout is one JSON object with every figure; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bounded.economics.ledger import LedgerRow, SqlLedger, to_e10
from bounded.store.db import Database

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness_stats import percentile  # the same statistics as the gateway benches

PRICE_IN, PRICE_OUT = Decimal("0.15"), Decimal("0.6")  # USD per million tokens
INPUT_TOKENS, OUTPUT_TOKENS = 14, 8


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _r(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


COST_E10 = to_e10((INPUT_TOKENS * PRICE_IN + OUTPUT_TOKENS * PRICE_OUT) / Decimal(1_000_000))


def make_row(i: int) -> LedgerRow:
    return LedgerRow(
        ts=time.time(),
        trace_id=f"{i:032x}",
        session_id=None,
        key_id="bench-key",
        team="bench",
        feature="bench",
        arm="stable",
        provider="standin",
        deployment="gpt-test",
        model="stub-model",
        input_tokens=INPUT_TOKENS,
        output_tokens=OUTPUT_TOKENS,
        cached_tokens=0,
        reasoning_tokens=0,
        cost_e10=COST_E10,
        usage_source="provider",
        latency_ms=0.5,
        ttft_ms=None,
        status=200,
        error_class=None,
        attempts=1,
        stream=False,
    )


@dataclass
class Flushes:
    """Wraps ``ledger._flush`` (looked up on the instance by ``record``'s ``call_soon``)
    to count commits, their batch sizes and how long each holds the event loop."""

    batches: list[int] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)

    def install(self, ledger: SqlLedger) -> None:
        flush = ledger._flush

        def counted() -> None:
            self.batches.append(len(ledger._pending))
            t0 = time.perf_counter_ns()
            flush()
            self.ms.append((time.perf_counter_ns() - t0) / 1e6)

        ledger._flush = counted  # type: ignore[method-assign]

    def reset(self) -> None:
        self.batches.clear()
        self.ms.clear()


async def sequential(ledger: SqlLedger, start: int, n: int) -> list[float]:
    out = []
    for i in range(start, start + n):
        row = make_row(i)
        t0 = time.perf_counter_ns()
        await ledger.record(row)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


async def concurrent(
    ledger: SqlLedger, start: int, writers: int, per_writer: int
) -> tuple[list[float], float]:
    latencies: list[float] = []

    async def writer(w: int) -> None:
        base = start + w * per_writer
        for i in range(base, base + per_writer):
            row = make_row(i)
            t0 = time.perf_counter_ns()
            await ledger.record(row)
            latencies.append((time.perf_counter_ns() - t0) / 1e6)

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return latencies, time.perf_counter() - t0


def dist(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": _r(percentile(values, 0.5), 4),
        "p99": _r(percentile(values, 0.99), 4),
        "p999": _r(percentile(values, 0.999), 4),
        "max": _r(max(values), 4) if values else None,
        "mean": _r(sum(values) / len(values), 4) if values else None,
    }


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    path = workdir / "ledger.db"
    url = f"sqlite:///{path}"
    db = Database.open(url)
    ledger = SqlLedger(db)
    flushes = Flushes()
    flushes.install(ledger)
    out: dict[str, Any] = {}
    try:
        log(f">> sequential: {args.warmup} warm-up + {args.rows} measured rows")
        await sequential(ledger, 0, args.warmup)
        gc.collect()
        flushes.reset()
        t0 = time.perf_counter()
        seq = await sequential(ledger, args.warmup, args.rows)
        seq_s = time.perf_counter() - t0
        seq_flush = list(flushes.ms)
        seq_commits = len(flushes.batches)

        per_writer = max(1, args.concurrent_rows // args.writers)
        total = per_writer * args.writers
        log(f">> concurrent: {args.writers} writers x {per_writer} rows = {total}")
        start = args.warmup + args.rows
        gc.collect()
        flushes.reset()
        con, con_s = await concurrent(ledger, start, args.writers, per_writer)
        batches = list(flushes.batches)
        con_flush = list(flushes.ms)
    finally:
        await ledger.aclose()
        db.close()

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        stored, cost_e10 = conn.execute(
            "SELECT count(*), coalesce(sum(cost_e10), 0) FROM ledger"
        ).fetchone()
    finally:
        conn.close()
    expected = args.warmup + args.rows + total
    wal = path.with_name(path.name + "-wal")

    s = dist(seq)
    sf = dist(seq_flush)
    c = dist(con)
    cf = dist(con_flush)
    out.update(
        {
            "seq_rows": args.rows,
            "seq_record_p50_ms": s["p50"],
            "seq_record_p99_ms": s["p99"],
            "seq_record_p999_ms": s["p999"],
            "seq_record_max_ms": s["max"],
            "seq_record_mean_ms": s["mean"],
            "seq_rows_per_s": _r(args.rows / seq_s, 1),
            "seq_commits": seq_commits,
            "seq_commit_p50_ms": sf["p50"],
            "seq_commit_p99_ms": sf["p99"],
            "seq_commit_p999_ms": sf["p999"],
            "seq_commit_max_ms": sf["max"],
            "con_writers": args.writers,
            "con_rows": total,
            "con_rows_per_s": _r(total / con_s, 1),
            "con_commits": len(batches),
            "con_rows_per_commit_mean": _r(total / len(batches), 2) if batches else None,
            "con_rows_per_commit_p50": _r(percentile(batches, 0.5), 1),
            "con_rows_per_commit_max": max(batches) if batches else None,
            "con_record_p50_ms": c["p50"],
            "con_record_p99_ms": c["p99"],
            "con_record_p999_ms": c["p999"],
            "con_record_max_ms": c["max"],
            "con_commit_p50_ms": cf["p50"],
            "con_commit_p99_ms": cf["p99"],
            "con_commit_max_ms": cf["max"],
            "stored_rows": stored,
            "expected_rows": expected,
            "rows_ok": stored == expected,
            "cost_per_row_usd": float(Decimal(COST_E10) / Decimal("1e10")),
            "stored_cost_usd": _r(cost_e10 / 1e10, 6),
            "db_mb": _r(path.stat().st_size / 1e6, 2),
            "wal_mb": _r(wal.stat().st_size / 1e6, 2) if wal.exists() else 0.0,
            "settings": {
                "warmup": args.warmup,
                "loop": "uvloop" if _uvloop() else "asyncio",
                "sqlite": sqlite3.sqlite_version,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "tmpdir": str(workdir.parent),
                "loadavg_1m": _r(os.getloadavg()[0], 2),
            },
        }
    )
    return out


def _uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def report(out: dict[str, Any]) -> None:
    st = out["settings"]
    print(
        f"ledger write: SqlLedger.record on SQLite {st['sqlite']} (WAL, synchronous=NORMAL) in "
        f"{st['tmpdir']}; {st['loop']}; {st['cpus']} CPUs, load {st['loadavg_1m']}"
    )
    print(
        f"sequential ({out['seq_rows']:,} rows, one commit each: {out['seq_commits']:,} "
        f"commits), {out['seq_rows_per_s']:,.0f} rows/s"
    )
    print(
        f"  record  ms: p50 {out['seq_record_p50_ms']:.4f}  p99 {out['seq_record_p99_ms']:.4f}"
        f"  p99.9 {out['seq_record_p999_ms']:.4f}  max {out['seq_record_max_ms']:.3f}"
        f"  mean {out['seq_record_mean_ms']:.4f}"
    )
    print(
        f"  commit  ms: p50 {out['seq_commit_p50_ms']:.4f}  p99 {out['seq_commit_p99_ms']:.4f}"
        f"  p99.9 {out['seq_commit_p999_ms']:.4f}  max {out['seq_commit_max_ms']:.3f}"
        "  (time _flush holds the event loop)"
    )
    print(
        f"concurrent ({out['con_writers']} writers, {out['con_rows']:,} rows): "
        f"{out['con_rows_per_s']:,.0f} rows/s, {out['con_commits']:,} commits, rows/commit "
        f"mean {out['con_rows_per_commit_mean']} p50 {out['con_rows_per_commit_p50']} "
        f"max {out['con_rows_per_commit_max']}"
    )
    print(
        f"  record  ms: p50 {out['con_record_p50_ms']:.4f}  p99 {out['con_record_p99_ms']:.4f}"
        f"  p99.9 {out['con_record_p999_ms']:.4f}  max {out['con_record_max_ms']:.3f}"
    )
    print(
        f"  commit  ms: p50 {out['con_commit_p50_ms']:.4f}  p99 {out['con_commit_p99_ms']:.4f}"
        f"  max {out['con_commit_max_ms']:.3f}"
    )
    print(
        f"stored rows {out['stored_rows']:,} of {out['expected_rows']:,} "
        f"({'ok' if out['rows_ok'] else 'MISMATCH'}), cost ${out['stored_cost_usd']} "
        f"(${out['cost_per_row_usd']} a row); db {out['db_mb']} MB, wal {out['wal_mb']} MB"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SqlLedger.record latency and throughput")
    parser.add_argument("--rows", type=int, default=20_000, help="sequential rows (20000)")
    parser.add_argument("--warmup", type=int, default=2_000, help="warm-up rows (2000)")
    parser.add_argument("--writers", type=int, default=64, help="concurrent writers (64)")
    parser.add_argument(
        "--concurrent-rows",
        type=int,
        default=64_000,
        help="rows in the concurrent phase, split across the writers (64000)",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the temp store goes (default: $TMPDIR)"
    )
    args = parser.parse_args(argv)
    if min(args.rows, args.writers, args.concurrent_rows) < 1 or args.warmup < 0:
        parser.error("--rows, --writers and --concurrent-rows must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    gc.set_threshold(10_000, 20, 20)  # as the gateway's server does
    workdir = Path(tempfile.mkdtemp(prefix="bounded-ledger-", dir=args.dir))
    try:
        if _uvloop():
            import uvloop

            out = uvloop.run(run(args, workdir))
        else:
            out = asyncio.run(run(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(out)
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0 if out["rows_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
