"""Each arm's requests during a release, read back from the ledger.

A request is all the ledger rows of one trace id in one arm (a repair or an escalation
adds rows): it erred if any row has a 5xx status, failed validation if any pass did (a
candidate that needs repairs is worse even when the repair succeeds), hit an output guard
if any row is flagged ``output_guard``; its latency and cost are the sums over its rows.
Its outcome is the latest ``POST /v1/outcomes`` for its trace id. In a shadow release the
user only ever saw the stable answer, so outcomes are read for canaries only.

Every row served while a release runs carries its id (``ledger.release_id``, set by the
release stage on both arms): the control arm is its ``stable`` rows, the treated arm its
``canary`` or ``shadow`` rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bounded.releases.decide import Sample
from bounded.releases.store import Release
from bounded.store.db import Database

E10 = 1e10


@dataclass
class _Acc:
    error: bool = False
    validation_failed: bool = False
    guard_hit: bool = False
    latency_ms: float = 0.0
    cost_e10: int = 0


def read_arms(db: Database, release: Release) -> tuple[list[Sample], list[Sample]]:
    """(stable, candidate) samples of ``release`` so far."""
    treated = release.mode  # canary | shadow: the arm the candidate's rows carry
    rows = db.execute(
        "SELECT trace_id, arm, status, validation, flags, latency_ms, cost_e10 FROM ledger"
        " WHERE release_id = ? AND operation = 'chat' AND arm IN ('stable', ?)",
        (release.id, treated),
    )
    requests: dict[tuple[str, str], _Acc] = defaultdict(_Acc)
    for row in rows:
        acc = requests[(row["arm"], row["trace_id"])]
        acc.error = acc.error or int(row["status"]) >= 500
        acc.validation_failed = acc.validation_failed or row["validation"] == "failed"
        acc.guard_hit = acc.guard_hit or "output_guard" in (row["flags"] or "")
        acc.latency_ms += float(row["latency_ms"])
        acc.cost_e10 += int(row["cost_e10"])
    outcomes = _outcomes(db, release) if release.mode == "canary" else {}
    stable: list[Sample] = []
    candidate: list[Sample] = []
    for (arm, trace_id), acc in requests.items():
        sample = Sample(
            error=acc.error,
            validation_failed=acc.validation_failed,
            guard_hit=acc.guard_hit,
            latency_ms=acc.latency_ms,
            cost=acc.cost_e10 / E10,
            success=outcomes.get(trace_id),
        )
        (stable if arm == "stable" else candidate).append(sample)
    return stable, candidate


def _outcomes(db: Database, release: Release) -> dict[str, bool]:
    rows: list[Any] = db.execute(
        "SELECT o.trace_id, o.outcome FROM outcomes o WHERE o.trace_id IN"
        " (SELECT trace_id FROM ledger WHERE release_id = ?) ORDER BY o.id",
        (release.id,),
    )
    return {r["trace_id"]: r["outcome"] == "success" for r in rows}  # the latest wins


def cost_by_arm(db: Database, release: Release) -> dict[str, float]:
    """USD spent per arm during the release (a shadow's is the release's own cost)."""
    rows = db.execute(
        "SELECT arm, SUM(cost_e10) AS cost FROM ledger WHERE release_id = ? GROUP BY arm",
        (release.id,),
    )
    return {r["arm"]: int(r["cost"] or 0) / E10 for r in rows}
