"""Cheap structural checks of request bodies: wrong shapes get a 422 naming the field.

Only what bounded itself relies on is checked; every other field passes through to the
provider untouched, so new OpenAI parameters work without a bounded release.
"""

from __future__ import annotations

from typing import Any

import orjson

from bounded.errors import InvalidRequest, Unprocessable

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_FORMATS = frozenset({"text", "json_object", "json_schema"})


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return body


def check_chat(body: dict[str, Any]) -> None:
    _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Unprocessable("'messages' must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Unprocessable(f"messages[{i}] must be an object", param=f"messages[{i}]")
        if message.get("role") not in _ROLES:
            raise Unprocessable(
                f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}",
                param=f"messages[{i}].role",
            )
    _optional(body, "stream", bool)
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise Unprocessable(f"'{name}' must be a positive integer", param=name)
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float)
        or isinstance(temperature, bool)
        or not 0 <= temperature <= 2
    ):
        raise Unprocessable("'temperature' must be a number from 0 to 2", param="temperature")
    _optional(body, "tools", list)
    _optional(body, "stream_options", dict)
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in _FORMATS:
            raise Unprocessable(
                "'response_format.type' must be text, json_object or json_schema",
                param="response_format",
            )
        if fmt["type"] == "json_schema" and not isinstance(
            (fmt.get("json_schema") or {}).get("schema"), dict
        ):
            raise Unprocessable(
                "'response_format.json_schema.schema' must be an object",
                param="response_format.json_schema",
            )


def check_embeddings(body: dict[str, Any]) -> list[str]:
    _model(body)
    value = body.get("input")
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        texts = value
    else:
        raise Unprocessable(
            "'input' must be a string or a non-empty array of strings", param="input"
        )
    if any(not t for t in texts):
        raise Unprocessable("'input' must not contain empty strings", param="input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise Unprocessable("'encoding_format' must be float or base64", param="encoding_format")
    return texts


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Unprocessable("'model' must be a feature or model name", param="model")
    return model


def _optional(body: dict[str, Any], name: str, kind: type) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise Unprocessable(f"'{name}' must be of type {kind.__name__}", param=name)
