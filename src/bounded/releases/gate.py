"""The eval gate before a canary: real users only see a candidate that passed its suite.

A canary needs a passing eval run of the feature at the candidate's prompt version when the
feature's risk tier is ``high`` or its release rules say ``require_eval: true``. A shadow
never needs one: no user sees its answers. The run is the newest passing one that
``bounded eval run --target FEATURE --prompt-version V`` stored (``evals.store``).
"""

from __future__ import annotations

from typing import Any

from bounded.config.schema import FeatureConfig
from bounded.store.db import Database


def gate_required(feature: FeatureConfig, mode: str) -> bool:
    if mode != "canary":
        return False
    required = feature.release is not None and feature.release.require_eval
    return feature.risk_tier == "high" or required


def passing_run(db: Database, feature: str, prompt_version: int | None) -> dict[str, Any] | None:
    """The newest passing eval run of ``feature`` at ``prompt_version`` (any, when None)."""
    from bounded.evals.store import latest_passing_run

    version = None if prompt_version is None else str(prompt_version)
    run = latest_passing_run(db, feature, prompt_version=version)
    if run is None:
        return None
    return {
        "run": run.id,
        "suite": run.suite,
        "pass_rate": run.pass_rate,
        "created_at": run.created_at,
    }
