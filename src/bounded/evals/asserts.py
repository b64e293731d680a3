"""``assert`` entries as written in a suite become :class:`AssertSpec`.

promptfoo's type strings, ``not-`` prefix, ``value``, ``threshold``, ``weight``, ``metric``
and ``assert-set``. An unknown type is a suite error at load time (file, line, the
nearest known type as the hint), not a failure discovered mid-run.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from bounded.evals.assertions.registry import known_types
from bounded.evals.errors import SuiteError
from bounded.evals.model import AssertSpec
from bounded.evals.yamlio import Lines

JS_HINT = (
    "rewrite it as `type: python` with the same check in Python (it gets output and "
    "context), inline or as `value: file://check.py`"
)


def parse_asserts(
    items: list[Any], base: Path, lines: Lines, where: tuple[str | None, int | None]
) -> list[AssertSpec]:
    return [parse_assert(item, base, lines, where) for item in items]


def parse_assert(
    item: Any, base: Path, lines: Lines, where: tuple[str | None, int | None]
) -> AssertSpec:
    at = lines.of(item) if isinstance(item, dict) else where
    if at[0] is None:
        at = where
    if not isinstance(item, dict) or "type" not in item:
        raise SuiteError(
            f"an assert entry needs a type: {item!r}",
            file=at[0],
            line=at[1],
            hint="e.g. `- type: contains\\n  value: Paris`",
        )
    if "transform" in item:
        raise SuiteError(
            "`transform` on an assertion is JavaScript, which bounded does not run",
            file=at[0],
            line=at[1],
            hint="grade the raw output, or move the transform into a python assertion",
        )
    written = str(item["type"])
    if written == "assert-set":
        children = parse_asserts(list(item.get("assert") or []), base, lines, at)
        return AssertSpec(
            "assert-set",
            threshold=_number(item.get("threshold"), "threshold", at),
            weight=_number(item.get("weight", 1), "weight", at) or 0.0,
            metric=item.get("metric"),
            children=children,
            raw=item,
            where=at,
        )
    inverse = written.startswith("not-")
    kind = written[4:] if inverse else written
    if kind not in known_types():
        close = difflib.get_close_matches(kind, known_types(), n=1)
        raise SuiteError(
            f"unknown assertion type {written!r}",
            file=at[0],
            line=at[1],
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "supported: "
            + ", ".join(sorted(known_types())),
        )
    weight = item.get("weight", 1)
    return AssertSpec(
        kind,
        inverse=inverse,
        value=item.get("value"),
        threshold=_number(item.get("threshold"), "threshold", at),
        weight=float(weight) if isinstance(weight, int | float) else 1.0,
        metric=item.get("metric"),
        config=dict(item.get("config") or {}),
        provider=item.get("provider"),
        raw=item,
        where=at,
    )


def _number(value: Any, name: str, at: tuple[str | None, int | None]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SuiteError(f"{name} must be a number, not {value!r}", file=at[0], line=at[1])
    return float(value)


def refuse_javascript(specs: list[AssertSpec], test: dict[str, Any]) -> None:
    """A javascript assertion stops the suite before anything runs or is stored: no
    embedded JS engine ships with bounded, and grading a suite without one of its checks
    would report a verdict the suite's author never asked for."""
    for spec in specs:
        refuse_javascript(spec.children, test)
        if spec.type == "javascript":
            name = test.get("description")
            named = f"test {name!r}" if name else "a test without a description"
            raise SuiteError(
                f"javascript assertions are not supported by bounded ({named})",
                file=spec.where[0],
                line=spec.where[1],
                hint=JS_HINT,
            )
