"""JSON and tool-call assertions: is-json, contains-json (both with an optional JSON
Schema, as YAML/JSON text, an object or a ``file://``), is-valid-openai-tools-call."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import yaml

from bounded.evals.assertions.base import Context, Grade, Misconfigured
from bounded.evals.assertions.registry import register
from bounded.evals.yamlio import is_ref, ref_path


def _validator(ctx: Context) -> jsonschema.protocols.Validator | Grade | None:
    value = ctx.value
    if value is None or value == "":
        return None
    try:
        if is_ref(value):
            value = yaml.safe_load(ref_path(value, ctx.base).read_text(encoding="utf-8"))
        elif isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict | bool):
            raise ValueError(f"{ctx.spec.type} assertion must have a string, boolean, or object")
        cls = jsonschema.validators.validator_for(value)
        cls.check_schema(value)
        return cls(value)
    except (OSError, ValueError, yaml.YAMLError, jsonschema.SchemaError) as exc:
        return Grade(False, 0.0, f"Invalid JSON schema: {exc}")


def _errors(validator: jsonschema.protocols.Validator, data: Any) -> str:
    return "; ".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(data)
    )


@register("is-json")
def is_json(ctx: Context) -> Grade:
    try:
        data = json.loads(ctx.text)
    except ValueError:
        passed = ctx.inverse
        return Grade(
            passed,
            float(passed),
            "Assertion passed" if passed else "Expected output to be valid JSON",
        )
    validator = _validator(ctx)
    if isinstance(validator, Grade):
        return validator
    if validator is not None:
        problems = _errors(validator, data)
        passed = (not problems) != ctx.inverse
        if not passed:
            reason = (
                "Output is JSON that conforms to the provided schema"
                if ctx.inverse
                else f"JSON does not conform to the provided schema. Errors: {problems}"
            )
            return Grade(False, 0.0, reason)
        return Grade(True, 1.0, "Assertion passed")
    passed = not ctx.inverse
    return Grade(
        passed,
        float(passed),
        "Assertion passed" if passed else "Expected output to not be valid JSON",
    )


def extract_json_objects(text: str) -> list[Any]:
    """Every JSON object embedded in the text, left to right (prose around them allowed)."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    i = text.find("{")
    while i >= 0:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        i = text.find("{", end)
    return found


@register("contains-json")
def contains_json(ctx: Context) -> Grade:
    objects = extract_json_objects(ctx.text)
    passed = (len(objects) == 0) if ctx.inverse else (len(objects) > 0)
    reason = "Expected output to contain valid JSON"
    validator = _validator(ctx) if objects else None
    if isinstance(validator, Grade):
        return validator
    if validator is not None:
        for obj in objects:
            problems = _errors(validator, obj)
            passed = bool(problems) if ctx.inverse else not problems
            if not problems:
                if ctx.inverse:
                    reason = "Output contains JSON conforming to the provided schema"
                break
            reason = f"JSON does not conform to the provided schema. Errors: {problems}"
    return Grade(passed, float(passed), "Assertion passed" if passed else reason)


@register("is-valid-openai-tools-call")
def tools_call(ctx: Context) -> Grade:
    calls: Any = ctx.output.graded_value()
    if isinstance(calls, str):
        try:
            calls = json.loads(calls)
        except ValueError:
            calls = None
    if isinstance(calls, dict) and "tool_calls" in calls:
        calls = calls["tool_calls"]
    if (
        not isinstance(calls, list)
        or not calls
        or any(
            not isinstance(c, dict)
            or not isinstance((c.get("function") or {}).get("name"), str)
            or not isinstance((c.get("function") or {}).get("arguments"), str)
            for c in calls
        )
    ):
        return Grade(
            False, 0.0, f"OpenAI did not return a valid-looking tools response: {json.dumps(calls)}"
        )
    tools = ctx.provider.config.get("tools")
    if not tools:
        return Grade(False, 0.0, "No tools configured in provider, but output contains tool calls")
    functions = {
        t["function"]["name"]: t["function"]
        for t in tools
        if isinstance(t, dict) and t.get("type") == "function" and "function" in t
    }
    for call in calls:
        fn = call["function"]
        spec = functions.get(fn["name"])
        if spec is None:
            return Grade(
                False, 0.0, f"Called {fn['name']}, but there is no function with that name"
            )
        try:
            args = json.loads(fn["arguments"])
        except ValueError:
            return Grade(False, 0.0, f"Arguments of {fn['name']} are not JSON: {fn['arguments']}")
        schema = spec.get("parameters")
        if schema:
            try:
                jsonschema.validate(args, schema)
            except jsonschema.ValidationError as exc:
                return Grade(
                    False, 0.0, f"Call to {fn['name']} does not match its schema: {exc.message}"
                )
            except jsonschema.SchemaError as exc:
                raise Misconfigured(
                    f"tool {fn['name']} has an invalid schema: {exc.message}"
                ) from None
    return Grade(True, 1.0, "Assertion passed")
