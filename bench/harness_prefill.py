"""Stores as a gateway that has served a while has them: ``--prefill N`` traces (with text)
and ledger rows, written before a bounded server starts, with the ids that copy of bounded
makes (its own ``new_span_id`` and trace ids), so an A/B of an id change compares each
side's own indexes.

    python bench/harness_prefill.py sqlite:///state/bounded.db 200000

Run with the server's Python and PYTHONPATH (``Launchers.bounded`` does that). Ledger rows
are feature ``prefill`` (``read_ledger`` leaves them out), outside every budget the bench
sets. Traces and rows are dated over the hour before now, oldest first, 500 per transaction.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bounded.gateway.call import client_trace_id
from bounded.store.db import Database
from bounded.telemetry import store
from bounded.telemetry.spans import new_span_id
from trace_writer import COMPLETION, PROMPT, typical

FEATURE = "prefill"
BATCH = 500
_LEDGER = (
    "INSERT INTO ledger (ts, trace_id, feature, arm, provider, deployment, model, input_tokens,"
    " output_tokens, cost_e10, latency_ms, status, attempts)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NO_HEADERS = SimpleNamespace(headers={})


def prefill(url: str, count: int) -> None:
    main = Database.open(url)
    traces = store.open_trace_store(store.trace_store_url(url))
    assert traces is not None
    template = [typical(i, True) for i in range(BATCH)]
    start = time.time() - 3600
    step = 3600 / max(count, 1)
    done = 0
    try:
        while done < count:
            rows, texts, ledger = [], [], []
            for r in template[: count - done]:
                ts = start + done * step
                done += 1
                r.trace_id = client_trace_id(_NO_HEADERS)  # type: ignore[arg-type]
                r.root.span_id = new_span_id()
                r.root.start_ns, r.root.end_ns = int(ts * 1e9), int(ts * 1e9) + 41_000_000
                r.feature = FEATURE
                rows.append(store._trace_row(r))
                texts.append((r.root.span_id, r.trace_id, ts, FEATURE, PROMPT, COMPLETION,
                              time.time() + 7 * 86400))  # fmt: skip
                ledger.append((ts, r.trace_id, FEATURE, "stable", "standin", "gpt-test",
                               "stub-model", 12, 8, 66_000, 1.5, 200, 1))  # fmt: skip
            with traces.transaction():
                traces.executemany(store._INSERT_TRACE, rows)
                traces.executemany(store._INSERT_TEXT, texts)
            with main.transaction():
                main.executemany(_LEDGER, ledger)
    finally:
        traces.close()
        main.close()


if __name__ == "__main__":
    prefill(sys.argv[1], int(sys.argv[2]))
