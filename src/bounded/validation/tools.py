"""Tool calls in a reply: a tool the feature allows, declared by the request, with
arguments that match the tool's declared JSON Schema.

    problems = check_tool_calls(message["tool_calls"], request_tools, feature_tools)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import jsonschema

from bounded.validation.config import ToolsConfig
from bounded.validation.output import SchemaCheck


def check_tool_calls(
    calls: Sequence[dict[str, Any]], declared: Sequence[dict[str, Any]], policy: ToolsConfig
) -> list[str]:
    """Problems with the tool calls of one reply; [] when every call is fine."""
    schemas = {
        (t.get("function") or {}).get("name"): (t.get("function") or {}).get("parameters")
        for t in declared
    }
    problems: list[str] = []
    for i, call in enumerate(calls):
        function = call.get("function") or {}
        name = function.get("name")
        if policy.allow is not None and name not in policy.allow:
            problems.append(
                f"tool_calls[{i}]: tool {name!r} is not allowed for this feature "
                f"(allowed: {', '.join(policy.allow) or 'none'})"
            )
            continue
        if name not in schemas:
            problems.append(f"tool_calls[{i}]: tool {name!r} was not declared in the request")
            continue
        if not policy.validate_arguments:
            continue
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError as exc:
            problems.append(f"tool_calls[{i}] ({name}): arguments are not valid JSON: {exc.msg}")
            continue
        schema = schemas[name]
        if not isinstance(schema, dict):
            continue
        try:
            found = _check_for(json.dumps(schema, sort_keys=True)).problems_of(arguments)
        except (
            jsonschema.SchemaError
        ):  # the request declared a broken schema: not the reply's fault
            continue
        problems += [f"tool_calls[{i}] ({name}) arguments {p}" for p in found]
    return problems


@functools.lru_cache(maxsize=256)
def _check_for(schema_json: str) -> SchemaCheck:
    """Requests declare the same tools over and over: compile each schema once."""
    return SchemaCheck(json.loads(schema_json))
