"""The ``bounded.yaml`` part that releases read: a feature's decision rules.

    features:
      support-answer:
        release:
          signals: [error_rate, validation_failures, latency_p95]
          max_regression: 0.02           # or per signal: {error_rate: 0.01, latency_p95: 0.05}
          min_samples: 200               # per arm, before any decision
          confidence: 0.95               # 1 - alpha of the always-valid test
          evaluate_every_s: 5
          require_eval: true             # a passing eval run before a canary (tier high: always)

A rate's regression is in points (0.02: two points more errors); ``cost_per_request`` is
relative to the stable arm's mean (0.1: ten per cent dearer); ``latency_p95`` is the share
of requests slower than the stable arm's p95, in points over its 5 %. Imports nothing but
pydantic, so the config schema can use it without cycles.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Signal = Literal[
    "error_rate",
    "validation_failures",
    "guard_hits",
    "latency_p95",
    "cost_per_request",
    "outcome_success",
]
SIGNALS: tuple[Signal, ...] = (
    "error_rate",
    "validation_failures",
    "guard_hits",
    "latency_p95",
    "cost_per_request",
    "outcome_success",
)
DEFAULT_SIGNALS: tuple[Signal, ...] = ("error_rate", "validation_failures", "guard_hits")


class ReleaseRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    signals: tuple[Signal, ...] = Field(DEFAULT_SIGNALS, min_length=1)
    max_regression: float | dict[Signal, float] = Field(
        0.02, description="a number for every signal, or one per signal"
    )
    min_samples: int = Field(100, ge=10, description="requests per arm before any decision")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    evaluate_every_s: float = Field(5.0, gt=0)
    auto_promote: bool = True
    auto_rollback: bool = True
    require_eval: bool = Field(
        False, description="a passing eval run before a canary starts (always for risk tier high)"
    )

    @model_validator(mode="after")
    def _margins(self) -> ReleaseRules:
        margins = self.max_regression
        if isinstance(margins, dict):
            missing = [s for s in self.signals if s not in margins]
            if missing:
                raise ValueError(f"max_regression names no margin for {', '.join(missing)}")
            values = list(margins.values())
        else:
            values = [margins]
        if any(v <= 0 for v in values):
            raise ValueError("max_regression must be positive (the regression allowed)")
        return self

    def margin(self, signal: Signal) -> float:
        if isinstance(self.max_regression, dict):
            return self.max_regression[signal]
        return self.max_regression

    @property
    def alpha(self) -> float:
        return 1 - self.confidence


DEFAULT_RULES = ReleaseRules()
