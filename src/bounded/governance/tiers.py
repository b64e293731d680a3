"""Ownership and risk tiers: every feature names both, and its tier sets minimum controls.

    problems = check_governance(config)   # [(yaml path, what is missing, how to add it)]

``bounded config check`` fails on any of these; a running gateway does not (a config that
served yesterday still serves today, and the check says what to add). The minimum
controls per tier:

========  =====================================================================
low       an owner and an explicit ``risk_tier``
medium    ... and input guards on
high      ... and input and output guards on, an eval gate (``eval:``) before any
          release; no stored prompt or completion text unless ``telemetry.store_text``
          opts in (telemetry's default for the tier)
========  =====================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bounded.validation.policy import effective_policy

if TYPE_CHECKING:
    from bounded.config.schema import BoundedConfig, FeatureConfig

Issue = tuple[str, str, str]  # path, message, hint

TIERS = ("low", "medium", "high")


def check_governance(config: BoundedConfig) -> list[Issue]:
    issues: list[Issue] = []
    for name, feature in config.features.items():
        issues += feature_issues(name, feature)
    return issues


def feature_issues(name: str, feature: FeatureConfig) -> list[Issue]:
    path = f"features.{name}"
    issues: list[Issue] = []
    if not feature.owner.strip():
        issues.append((f"{path}.owner", "the owner is empty", "name the team or person on call"))
    if "risk_tier" not in feature.model_fields_set:
        issues.append(
            (
                f"{path}.risk_tier",
                "no risk tier: every feature declares one",
                "add `risk_tier: low` (or medium, high); low keeps today's behaviour",
            )
        )
    tier = feature.risk_tier
    policy = effective_policy(feature)
    if tier in ("medium", "high") and not policy.input:
        issues.append(
            (
                f"{path}.guards.input",
                f"a {tier} feature needs input guards; this list is empty",
                "remove `guards.input: []` to take the tier's defaults, or list guards",
            )
        )
    if tier == "high":
        output = feature.output
        if not policy.output and not (output is not None and output.schema_):
            issues.append(
                (
                    f"{path}.guards.output",
                    "a high feature needs output guards or an output schema",
                    "remove `guards.output: []` for the tier's defaults (pii, secrets)",
                )
            )
        if feature.eval is None:
            issues.append(
                (
                    f"{path}.eval",
                    "a high feature needs an eval gate before any release",
                    "add `eval: {min_pass_rate: 0.95}` and run `bounded eval run`",
                )
            )
    return issues


def stores_text(feature: FeatureConfig) -> bool:
    """Whether the feature keeps prompt/completion text. Telemetry stores none for a high
    feature unless its ``telemetry.store_text`` says so: that explicit opt-in is the only way,
    so the check has nothing to fail on, and the dashboard shows it beside the tier."""
    policy: Any = getattr(feature, "telemetry", None)
    return bool(getattr(policy, "store_text", False)) if policy is not None else False


def controls(feature: FeatureConfig) -> dict[str, Any]:
    """A snapshot of the feature's controls (kept with an incident when it opens)."""
    policy = effective_policy(feature)
    return {
        "risk_tier": feature.risk_tier,
        "guards": {
            place: sorted({g.kind for g in policy.guards(place)})
            for place in ("input", "retrieved", "output")
        },
        "output_schema": bool(feature.output is not None and feature.output.schema_),
        "eval_gate": feature.eval is not None,
    }
