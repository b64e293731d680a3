"""The ``telemetry:`` sections of ``bounded.yaml``: the gateway's, and each feature's.

    telemetry:
      sample_ratio: 1.0                 # share of requests traced (metrics count them all)
      max_traces_per_s: 100             # per worker; past it only failures are traced
      otlp_endpoint: http://collector:4318/v1/traces   # also export, OTLP HTTP/protobuf
      trace_retention_days: 30
    features:
      support-answer:
        telemetry: {store_text: true, text_retention_days: 7}

Stored text is always redacted first (personal data and secrets become ``<EMAIL_1>``-style
placeholders). A ``high`` risk feature stores none unless its ``store_text`` says so.
These models import nothing but pydantic, so ``config.schema`` can use them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TelemetryConfig(_Frozen):
    enabled: bool = Field(
        True,
        description="false: no spans and no metrics at all (read at start-up; for "
        "measuring what telemetry costs)",
    )
    traces: bool = Field(True, description="record traces in the store (metrics regardless)")
    sample_ratio: float = Field(
        1.0, ge=0, le=1, description="share of requests traced, decided by trace id"
    )
    max_traces_per_s: float | None = Field(
        100.0,
        gt=0,
        description="traces each worker stores per second at most (a second's worth may be "
        "saved up); past it a request is counted in the metrics but not traced, unless it "
        "fails (failures have an allowance of their own, as large) or its client sent its "
        "own x-bounded-trace-id. null: every request sampled is traced",
    )
    otlp_endpoint: str | None = Field(
        None, description="an OTLP HTTP/protobuf traces URL, e.g. http://host:4318/v1/traces"
    )
    otlp_headers: dict[str, str] = Field(default_factory=dict)
    service_name: str = "bounded"
    trace_retention_days: float = Field(30.0, gt=0, description="spans deleted after this")
    retention_interval_s: float = Field(
        300.0, gt=0, description="how often the retention job deletes what has expired"
    )


class FeatureTelemetry(_Frozen):
    store_text: bool | None = Field(
        None,
        description="keep the redacted prompt and completion with the trace; "
        "default: yes, except for high risk features",
    )
    text_retention_days: float = Field(30.0, gt=0, description="stored text deleted after this")


def stores_text(risk_tier: str, policy: FeatureTelemetry) -> bool:
    """Does a feature keep (redacted) text? High risk keeps none unless it opts in."""
    if policy.store_text is not None:
        return policy.store_text
    return risk_tier != "high"
