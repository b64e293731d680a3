"""The ``bounded.yaml`` parts that evals read: a feature's gate and the judge.

    evals:
      judge: gpt-4o-mini            # any bounded model or feature; used by llm-rubric etc.
    features:
      support-answer:
        eval: {min_pass_rate: 0.9, max_regression: 0.05, max_cost_usd: 0.50}

Kept apart from the rest of the package so the config schema can import it without
pulling in the runner (no work at import time).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EvalGate(_Frozen):
    """A feature's release gate: what an eval run of it must show to pass."""

    min_pass_rate: float = Field(1.0, ge=0, le=1, description="share of cases that pass")
    max_regression: float | None = Field(
        None,
        ge=0,
        le=1,
        description="largest drop in pass rate against the baseline run (beyond judge spread)",
    )
    max_cost_usd: Decimal | None = Field(None, ge=0, description="whole run's cost")
    max_latency_ms: float | None = Field(None, gt=0, description="p95 latency of the cases")


class EvalsConfig(_Frozen):
    judge: str | None = Field(
        None,
        description="model or feature that grades llm-rubric, factuality, answer-relevance",
    )
