"""Load ``bounded.yaml``: YAML, then ``${ENV}`` interpolation, then the schema, then references.

Every problem comes back as a :class:`Problem` with the YAML path, what is wrong and a hint,
so ``bounded config check`` can list all of them at once instead of the first.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bounded.config.schema import BoundedConfig

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path or '<root>'}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


def load_config(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> BoundedConfig:
    """Read, interpolate and validate a config file; raise ConfigError listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source, [Problem("", "file not found", "pass --config PATH or create bounded.yaml")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [Problem("", f"cannot read file: {exc}")]) from None
    return parse_config(text, source=source, env=os.environ if env is None else env)


def parse_config(text: str, *, source: str = "<string>", env: Mapping[str, str]) -> BoundedConfig:
    if not text.strip():
        # An editor that truncates before writing shows an empty file for an instant; an
        # empty config would silently drop every feature, so it is an error, not a default.
        raise ConfigError(source, [Problem("", "file is empty", "see examples/bounded.yaml")])
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(
            source, [Problem("", f"invalid YAML at {where}: {getattr(exc, 'problem', exc)}")]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, [Problem("", "top level must be a mapping of sections")])
    # Every phase runs even when an earlier one found problems, so one run lists them all.
    problems: list[Problem] = []
    data = _interpolate(raw, "", env, problems)
    try:
        config = BoundedConfig.model_validate(data)
    except ValidationError as exc:
        problems += [_problem_from(err) for err in exc.errors()]
        raise ConfigError(source, problems + _raw_references(data)) from None
    problems += check_references(config)
    from bounded.validation.checks import check_validation

    # Relative paths (output schemas), like collection folders and server.store, are
    # relative to the working directory: a config copied elsewhere still finds them.
    config, issues = check_validation(config, Path.cwd())
    problems += [Problem(path, message, hint) for path, message, hint in issues]
    if problems:
        raise ConfigError(source, problems)
    return config


def _interpolate(node: Any, path: str, env: Mapping[str, str], problems: list[Problem]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, _join(path, str(k)), env, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(
            Problem(
                path,
                f"environment variable {name} is not set",
                f"export {name}=... or write ${{{name}:-default}}",
            )
        )
        return ""

    return _ENV.sub(replace, node)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _problem_from(err: Any) -> Problem:
    loc = [str(p) for p in err["loc"]]
    path = ""
    for part in loc:
        path = f"{path}[{part}]" if part.isdigit() else _join(path, part)
    kind = err["type"]
    hint = ""
    if kind == "extra_forbidden":
        hint = _suggest(loc)
        return Problem(path, "unknown key", hint)
    if kind == "missing":
        return Problem(path, "required key is missing")
    if kind == "literal_error":
        hint = f"use one of {err['ctx']['expected']}"
    return Problem(path, err["msg"], hint)


def _suggest(loc: list[str]) -> str:
    """Name the keys allowed where an unknown one was found, closest first."""
    model: type[BaseModel] | None = BoundedConfig
    for part in loc[:-1]:
        field = model.model_fields.get(part) if model else None
        if field is not None:
            model = _model_of(field.annotation)
        # else: a dict key or list index; the value's model is the one we already have
    if model is None:
        return ""
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], allowed, n=1)
    prefix = f"did you mean {close[0]!r}? " if close else ""
    return f"{prefix}allowed: {', '.join(allowed)}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def check_references(config: BoundedConfig) -> list[Problem]:
    """Cross-references pydantic cannot see: providers, models and features by name."""
    return _references(
        set(config.providers),
        {name: (m.provider, m.kind) for name, m in config.models.items()},
        {name: list(f.route.targets) for name, f in config.features.items()},
    ) + _retrieval_references(config)


def _retrieval_references(config: BoundedConfig) -> list[Problem]:
    """Collections: a known embedding model, overlap under chunk size, features' names."""
    from bounded.retrieval.config import EMBEDDING_MODELS

    problems: list[Problem] = []
    for name, collection in config.collections.items():
        if collection.embedding not in EMBEDDING_MODELS:
            problems.append(
                Problem(
                    f"collections.{name}.embedding",
                    f"unknown embedding model {collection.embedding!r}",
                    f"known: {', '.join(EMBEDDING_MODELS)}",
                )
            )
        if collection.chunking.overlap_tokens >= collection.chunking.max_tokens:
            problems.append(
                Problem(
                    f"collections.{name}.chunking.overlap_tokens",
                    "overlap must be smaller than max_tokens",
                )
            )
    defined = ", ".join(sorted(config.collections)) or "none"
    for name, feature in config.features.items():
        wanted = feature.retrieval.collection if feature.retrieval else None
        if wanted is not None and wanted not in config.collections:
            close = difflib.get_close_matches(wanted, list(config.collections), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                Problem(
                    f"features.{name}.retrieval.collection",
                    f"unknown collection {wanted!r}",
                    f"{hint}defined collections: {defined}",
                )
            )
    return problems


def _raw_references(data: dict[str, Any]) -> list[Problem]:
    """The same checks on data that failed the schema, reading only what is well-formed."""

    def section(key: str) -> dict[str, Any]:
        value = data.get(key)
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}

    models = {
        name: (m["provider"], "embedding" if m.get("kind") == "embedding" else "chat")
        for name, m in section("models").items()
        if isinstance(m, dict) and isinstance(m.get("provider"), str)
    }
    features: dict[str, list[str]] = {}
    for name, feature in section("features").items():
        route = feature.get("route") if isinstance(feature, dict) else None
        targets = route.get("targets") if isinstance(route, dict) else None
        features[name] = [str(t) for t in targets] if isinstance(targets, list) else []
    return _references(set(section("providers")), models, features)


def _references(
    provider_names: set[str],
    model_refs: dict[str, tuple[str, str]],
    feature_targets: dict[str, list[str]],
) -> list[Problem]:
    problems: list[Problem] = []
    providers = ", ".join(sorted(provider_names)) or "none"
    models = ", ".join(sorted(model_refs)) or "none"
    for name, (provider, _kind) in model_refs.items():
        if provider not in provider_names:
            problems.append(
                Problem(
                    f"models.{name}.provider",
                    f"unknown provider {provider!r}",
                    f"defined providers: {providers}",
                )
            )
    for name, targets in feature_targets.items():
        if name in model_refs:
            problems.append(
                Problem(
                    f"features.{name}",
                    "a model has the same name",
                    "feature and model names share one namespace",
                )
            )
        for i, target in enumerate(targets):
            path = f"features.{name}.route.targets[{i}]"
            if target not in model_refs:
                close = difflib.get_close_matches(target, list(model_refs), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problems.append(
                    Problem(path, f"unknown model {target!r}", f"{hint}defined models: {models}")
                )
            elif model_refs[target][1] != "chat":
                problems.append(
                    Problem(
                        path,
                        f"{target!r} is an embedding model",
                        "route chat features to chat models",
                    )
                )
    return problems
