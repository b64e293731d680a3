"""Governance settings in ``bounded.yaml``: health bands per feature, where alerts go.

Example::

    alerts:
      webhook: https://hooks.example.com/bounded     # POSTed JSON, retried off the request path
      window_s: 3600                                 # each check reads the last hour
      baseline_s: 604800                             # bands learned from the week before
    features:
      support-answer:
        owner: support-team
        risk_tier: medium
        health:
          validation_failure_rate: {max: 0.05}
          latency_p95_ms: {max: 2500}

A signal with a configured band uses it; one without is compared to the band learned
from its baseline window (mean ± ``sigmas`` standard deviations of hourly values). These
models import nothing but pydantic, so ``config.schema`` can use them without cycles.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SIGNALS: tuple[str, ...] = (
    "validation_failure_rate",
    "refusal_rate",
    "error_rate",
    "answer_tokens",
    "groundedness",
    "outcome_success_rate",
    "cost_per_success_usd",
    "latency_p95_ms",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Band(_Frozen):
    """The range a signal should stay in; either end may be left open."""

    min: float | None = None
    max: float | None = None


class HealthConfig(_Frozen):
    validation_failure_rate: Band | None = None
    refusal_rate: Band | None = None
    error_rate: Band | None = None
    answer_tokens: Band | None = None
    groundedness: Band | None = None
    outcome_success_rate: Band | None = None
    cost_per_success_usd: Band | None = None
    latency_p95_ms: Band | None = None
    learn: bool = Field(True, description="signals without a band: learn one from the baseline")

    def band(self, signal: str) -> Band | None:
        value = getattr(self, signal, None)
        return value if isinstance(value, Band) else None


class AlertsConfig(_Frozen):
    webhook: str | None = Field(None, description="POST each alert as JSON here (retried)")
    window_s: float = Field(3600.0, gt=0, description="the window each check reads")
    baseline_s: float = Field(7 * 86400.0, gt=0, description="the window bands are learned from")
    sigmas: float = Field(3.0, gt=0, description="learned band: mean ± this many deviations")
    min_samples: int = Field(20, ge=1, description="requests a window needs before it is judged")
    interval_s: float = Field(300.0, gt=0, description="how often the gateway checks")
    webhook_attempts: int = Field(5, ge=1, le=20)
