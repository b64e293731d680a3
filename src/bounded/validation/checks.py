"""Config checks for validation: schema files, guard kinds, actions and options.

Run by the config loader (so ``bounded config check`` lists them and a hot reload refuses
them): every problem is ``(yaml path, message, hint)``. Schema files are read here, once,
and put into the config inline, so nothing reads them per request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bounded.validation.config import ACTIONS_BY_PLACE, OutputConfig
from bounded.validation.guards.base import GuardConfigError
from bounded.validation.policy import PLACES, effective_policy

if TYPE_CHECKING:
    from bounded.config.schema import BoundedConfig, FeatureConfig

Issue = tuple[str, str, str]  # path, message, hint


def check_validation(config: BoundedConfig, base: Path) -> tuple[BoundedConfig, list[Issue]]:
    """The config with schema files read in, and every problem found."""
    issues: list[Issue] = []
    features: dict[str, FeatureConfig] = {}
    for name, feature in config.features.items():
        path = f"features.{name}"
        if feature.output is not None and isinstance(feature.output.schema_, str):
            schema = _read_schema(feature.output.schema_, base, f"{path}.output.schema", issues)
            output = feature.output.model_copy(update={"schema_": schema})
            output._schema_file = feature.output.schema_
            feature = feature.model_copy(update={"output": output})
        elif feature.output is not None and isinstance(feature.output.schema_, dict):
            _check_schema(feature.output.schema_, f"{path}.output.schema", issues)
        _check_guards(name, feature, issues)
        if feature.route.strategy == "cascade" and not _validates(feature):
            issues.append(
                (
                    f"{path}.route.strategy",
                    "a cascade needs something to judge answers by",
                    "add output.schema or output guards (or use lowest-cost)",
                )
            )
        features[name] = feature
    return config.model_copy(update={"features": features}), issues


def _validates(feature: FeatureConfig) -> bool:
    output: OutputConfig | None = feature.output
    return bool((output and output.schema_) or effective_policy(feature).output)


def _read_schema(value: str, base: Path, path: str, issues: list[Issue]) -> dict[str, Any] | None:
    file = Path(value) if Path(value).is_absolute() else base / value
    try:
        schema = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        issues.append((path, f"schema file {str(file)!r} does not exist", _SCHEMA_HINT))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        issues.append((path, f"cannot read schema file {str(file)!r}: {exc}", ""))
        return None
    except json.JSONDecodeError as exc:
        issues.append((path, f"schema file {str(file)!r} is not valid JSON: {exc}", ""))
        return None
    if not isinstance(schema, dict):
        issues.append((path, "a JSON Schema must be an object", _SCHEMA_HINT))
        return None
    _check_schema(schema, path, issues)
    return schema


_SCHEMA_HINT = (
    "a path relative to where bounded runs (like collection folders), or the schema inline"
)


def _check_schema(schema: dict[str, Any], path: str, issues: list[Issue]) -> None:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the top level"
        issues.append(
            (path, f"not a valid JSON Schema at {where}: {exc.message}", "see json-schema.org")
        )


def _check_guards(name: str, feature: FeatureConfig, issues: list[Issue]) -> None:
    from bounded.validation.guards import registry

    policy = effective_policy(feature)
    for place in PLACES:
        for i, spec in enumerate(policy.guards(place)):
            own = policy.sources[place] == "feature"
            path = f"features.{name}.guards.{place}[{i}]" if own else f"features.{name}.risk_tier"
            allowed = ACTIONS_BY_PLACE[place]
            if spec.action not in allowed:
                issues.append(
                    (
                        f"{path}.action",
                        f"{spec.action!r} is not an action for {place} guards",
                        f"use one of {', '.join(allowed)}",
                    )
                )
            if spec.restore and (place != "input" or spec.action != "redact"):
                issues.append(
                    (f"{path}.restore", "restore applies to input guards that redact", "")
                )
            if spec.kind == "groundedness" and (place != "output" or feature.retrieval is None):
                issues.append(
                    (
                        path,
                        "groundedness checks a reply against retrieved sources",
                        "use it on output guards of a feature with retrieval:",
                    )
                )
            if spec.kind not in registry.kinds():
                issues.append(
                    (
                        f"{path}.kind",
                        f"unknown guard kind {spec.kind!r}",
                        f"known kinds: {', '.join(registry.kinds())}",
                    )
                )
                continue
            try:
                registry.build(spec.kind, spec.detector_options())
            except GuardConfigError as exc:
                issues.append((path, str(exc), ""))
            except ImportError as exc:
                issues.append(
                    (
                        path,
                        f"guard {spec.kind!r} needs a package that is not installed: {exc}",
                        "pip install 'bounded[guards]'",
                    )
                )
