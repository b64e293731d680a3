"""A feature's effective validation policy: its own settings over its risk tier's defaults.

    policy = effective_policy(feature)     # data: what applies, and where it came from
    print(explain(name, feature))          # `bounded config check --explain NAME`

Risk tiers set defaults so that a ``high`` feature is guarded without anyone having to
remember to: a list the feature leaves out takes its tier's default, an empty list means
none. ``low`` has no defaults (nothing changes for existing configs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bounded.validation.config import GuardSpec, ToolsConfig

if TYPE_CHECKING:
    from bounded.config.schema import FeatureConfig

PLACES = ("input", "retrieved", "output")

TIER_GUARDS: dict[str, dict[str, tuple[GuardSpec, ...]]] = {
    "low": {"input": (), "retrieved": (), "output": ()},
    "medium": {
        "input": (GuardSpec(kind="secrets", action="block"), GuardSpec(kind="injection")),
        "retrieved": (GuardSpec(kind="injection"),),
        "output": (GuardSpec(kind="secrets", action="redact"),),
    },
    "high": {
        "input": (
            GuardSpec(kind="pii", action="redact", restore=True),
            GuardSpec(kind="secrets", action="block"),
            GuardSpec(kind="injection", action="block"),
        ),
        "retrieved": (GuardSpec(kind="injection", action="drop"),),
        "output": (
            GuardSpec(kind="pii", action="redact"),
            GuardSpec(kind="secrets", action="redact"),
        ),
    },
}
# A high feature's tool calls are checked against their declared schemas by default.
TIER_TOOLS: dict[str, ToolsConfig | None] = {
    "low": None,
    "medium": None,
    "high": ToolsConfig(validate_arguments=True),
}


@dataclass(frozen=True)
class EffectivePolicy:
    input: tuple[GuardSpec, ...]
    retrieved: tuple[GuardSpec, ...]
    output: tuple[GuardSpec, ...]
    tools: ToolsConfig | None
    # place -> "feature" or "risk tier <tier>": where each part came from
    sources: dict[str, str]

    def guards(self, place: str) -> tuple[GuardSpec, ...]:
        return tuple(getattr(self, place))

    @property
    def empty(self) -> bool:
        return not (self.input or self.retrieved or self.output or self.tools)


def effective_policy(feature: FeatureConfig) -> EffectivePolicy:
    tier = feature.risk_tier
    chosen: dict[str, tuple[GuardSpec, ...]] = {}
    sources: dict[str, str] = {}
    for place in PLACES:
        own = getattr(feature.guards, place)
        if own is None:
            chosen[place] = TIER_GUARDS[tier][place]
            sources[place] = f"risk tier {tier}"
        else:
            chosen[place] = tuple(own)
            sources[place] = "feature"
    tools = feature.tools if feature.tools is not None else TIER_TOOLS[tier]
    sources["tools"] = "feature" if feature.tools is not None else f"risk tier {tier}"
    return EffectivePolicy(chosen["input"], chosen["retrieved"], chosen["output"], tools, sources)


def explain(name: str, feature: FeatureConfig) -> str:
    """The effective policy of one feature, as ``bounded config check --explain`` prints it."""
    policy = effective_policy(feature)
    lines = [f"feature {name} (risk tier {feature.risk_tier}, owner {feature.owner})"]
    out = feature.output
    if out is not None and out.schema_ is not None:
        where = out.schema_file or (out.schema_ if isinstance(out.schema_, str) else "inline")
        lines.append(
            f"  output schema: {where}; on failure: {out.on_fail} (up to {out.max_repairs} repairs)"
        )
    else:
        lines.append("  output schema: none")
    lines.append(f"  route: {feature.route.strategy} over {', '.join(feature.route.targets)}")
    for place in PLACES:
        specs = policy.guards(place)
        shown = "; ".join(_describe(s) for s in specs) or "none"
        lines.append(f"  guards on {place} ({policy.sources[place]}): {shown}")
    tools = policy.tools
    if tools is None:
        lines.append(f"  tool calls ({policy.sources['tools']}): not checked")
    else:
        allowed = ", ".join(tools.allow) if tools.allow is not None else "any declared tool"
        checked = "arguments checked" if tools.validate_arguments else "arguments not checked"
        lines.append(f"  tool calls ({policy.sources['tools']}): {allowed}; {checked}")
    return "\n".join(lines)


def _describe(spec: GuardSpec) -> str:
    extra = []
    if spec.restore:
        extra.append("restore")
    if spec.threshold is not None:
        extra.append(f"threshold {spec.threshold:g}")
    if spec.min_score is not None:
        extra.append(f"min_score {spec.min_score:g}")
    if spec.entities:
        extra.append("entities " + ",".join(spec.entities))
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"{spec.kind} -> {spec.action}{tail}"
