"""Parsing a request body: JSON, an object, and no deeper than bounded will ever need.

What the fields must hold is :mod:`bounded.gateway.api_schema`'s business; this module
only turns bytes into a dict or a 400.
"""

from __future__ import annotations

from typing import Any

import orjson

from bounded.errors import InvalidRequest

# orjson refuses to serialise past 255 levels, and a body bounded cannot send upstream
# must be refused here, as the client's mistake, not found out later as an upstream
# failure. No chat request needs more: a deep tool schema is a few dozen levels.
MAX_DEPTH = 64


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
    # Counting brackets is a C loop over the bytes; only a body that could be deep pays
    # for the walk (brackets inside strings count too, so this over-approximates).
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(body, MAX_DEPTH):
        raise InvalidRequest(
            f"request body is nested more than {MAX_DEPTH} levels deep", code="too_deep"
        )
    return body


def _too_deep(value: Any, limit: int) -> bool:
    """Is any container nested more than ``limit`` levels? Iterative: no recursion limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
