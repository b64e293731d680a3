"""Plain-text assertions: equals, contains (and its any/all/case-insensitive kin),
starts-with, regex, word-count, levenshtein. Semantics as promptfoo's (including its
quirks: ``levenshtein`` ignores ``not-`` and treats a threshold of 0 as the default 5).
"""

from __future__ import annotations

import json
import re
from typing import Any

from bounded.evals.assertions.base import Context, Grade, Misconfigured
from bounded.evals.assertions.registry import register


def _grade(ctx: Context, matched: bool, what: str) -> Grade:
    passed = matched != ctx.inverse
    if passed:
        return Grade(True, 1.0, "Assertion passed")
    return Grade(False, 0.0, f"Expected output to {'not ' if ctx.inverse else ''}{what}")


@register("equals")
def equals(ctx: Context) -> Grade:
    value = ctx.value
    if isinstance(value, dict | list):
        try:
            matched = json.loads(ctx.text) == value
        except ValueError:
            matched = False
        return _grade(ctx, matched, f"equal {json.dumps(value)}")
    return _grade(ctx, ctx.text == _js_string(value), f'equal "{_js_string(value)}"')


def _js_string(value: Any) -> str:
    """``String(value)`` as JavaScript writes it (true, 1, 1.5, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _scalar(ctx: Context) -> str:
    value = ctx.value
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        raise Misconfigured(f'"{ctx.spec.type}" assertion type must have a string or number value')
    return _js_string(value)


@register("contains")
def contains(ctx: Context) -> Grade:
    value = _scalar(ctx)
    return _grade(ctx, value in ctx.text, f'contain "{value}"')


@register("icontains")
def icontains(ctx: Context) -> Grade:
    value = _scalar(ctx)
    return _grade(ctx, value.lower() in ctx.text.lower(), f'contain "{value}"')


def split_values(text: str) -> list[str]:
    """A comma-separated value list: fields trimmed, empty ones skipped, and double
    quotes keep commas inside a field (``"a, b", c`` is two values)."""
    values: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= n:
            break
        if text[i] == '"':
            i += 1
            field = []
            while i < n:
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                    field.append(text[i + 1])
                    i += 2
                elif text[i] == '"' and i + 1 < n and text[i + 1] == '"':
                    field.append('"')
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    field.append(text[i])
                    i += 1
            else:
                raise Misconfigured("Unterminated quoted field in contains assertion value")
            values.append("".join(field))
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            values.append(text[i:end].strip())
            i = end
    return values


def _values(ctx: Context) -> list[str]:
    value = ctx.value
    if not value:
        raise Misconfigured(f'"{ctx.spec.type}" assertion type must have a value')
    if isinstance(value, str):
        value = split_values(value)
    if not isinstance(value, list):
        raise Misconfigured(f'"{ctx.spec.type}" assertion type must have an array value')
    return [_js_string(v) for v in value]


def _any_all(ctx: Context, *, every: bool, fold: bool) -> Grade:
    values = _values(ctx)
    text = ctx.text.lower() if fold else ctx.text
    found = [(v.lower() if fold else v) in text for v in values]
    if every:
        missing = [v for v, f in zip(values, found, strict=True) if not f]
        return _grade(
            ctx,
            not missing,
            f"contain all of [{', '.join(values)}]. Missing: [{', '.join(missing)}]",
        )
    return _grade(ctx, any(found), f'contain one of "{", ".join(values)}"')


register("contains-any")(lambda ctx: _any_all(ctx, every=False, fold=False))
register("icontains-any")(lambda ctx: _any_all(ctx, every=False, fold=True))
register("contains-all")(lambda ctx: _any_all(ctx, every=True, fold=False))
register("icontains-all")(lambda ctx: _any_all(ctx, every=True, fold=True))


@register("starts-with")
def starts_with(ctx: Context) -> Grade:
    if not isinstance(ctx.value, str) or not ctx.value:
        raise Misconfigured('"starts-with" assertion type must have a string value')
    return _grade(ctx, ctx.text.startswith(ctx.value), f'start with "{ctx.value}"')


@register("ends-with")
def ends_with(ctx: Context) -> Grade:
    if not isinstance(ctx.value, str) or not ctx.value:
        raise Misconfigured('"ends-with" assertion type must have a string value')
    return _grade(ctx, ctx.text.endswith(ctx.value), f'end with "{ctx.value}"')


@register("regex")
def regex(ctx: Context) -> Grade:
    if not isinstance(ctx.value, str) or not ctx.value:
        raise Misconfigured('"regex" assertion type must have a string value')
    try:
        pattern = re.compile(ctx.value)
    except re.error as exc:
        return Grade(False, 0.0, f"Invalid regex pattern: {exc}")
    return _grade(ctx, pattern.search(ctx.text) is not None, f'match regex "{ctx.value}"')


@register("word-count")
def word_count(ctx: Context) -> Grade:
    value = ctx.value
    count = len(ctx.text.split())
    if isinstance(value, dict):
        low, high = value.get("min"), value.get("max")
        if low is None and high is None:
            raise Misconfigured('"word-count" assertion object must have "min" and/or "max"')
        ok = (low is None or count >= low) and (high is None or count <= high)
        return _grade(ctx, ok, f"have between {low} and {high} words, got {count}")
    try:
        expected = float(value)
    except (TypeError, ValueError):
        raise Misconfigured(
            '"word-count" assertion value must be a number or an object with min/max'
        ) from None
    return _grade(ctx, count == expected, f"have {_js_string(expected)} words, got {count}")


def levenshtein_distance(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


@register("levenshtein")
def levenshtein(ctx: Context) -> Grade:
    if not isinstance(ctx.value, str):
        raise Misconfigured('"levenshtein" assertion type must have a string value')
    limit = ctx.spec.threshold or 5
    distance = levenshtein_distance(ctx.text, ctx.value)
    if distance <= limit:
        return Grade(True, 1.0, "Assertion passed")
    return Grade(False, 0.0, f"Levenshtein distance {distance} is greater than threshold {limit:g}")
