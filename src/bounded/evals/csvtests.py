"""Tests from a CSV file, as promptfoo reads them.

Each column is a var, except the special ones: ``__expected`` (and ``__expected1``...)
hold an assertion written as a string (``contains: Paris``, ``icontains-any: a,b``,
``similar(0.8): text``, ``grade: rubric``, ``python: expr``; anything else is ``equals``),
``__description``, ``__metric``, ``__threshold``, ``__metadata:KEY``. Any other
``__`` column, an empty or repeated header is an error on line 1 with a hint.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bounded.evals.assertions.registry import known_types
from bounded.evals.errors import SuiteError
from bounded.evals.yamlio import Lines, read_csv

SPECIAL = ("__expected", "__description", "__metric", "__threshold", "__prefix", "__suffix")
_TYPED = re.compile(r"^(not-)?([a-z][a-z0-9-]*)(?:\((\d+(?:\.\d+)?)\))?:\s?(.*)$", re.DOTALL)


def csv_tests(path: Path, lines: Lines) -> list[dict[str, Any]]:
    header, rows = read_csv(path)
    _check_header(header, path)
    tests = []
    for line, row in rows:
        if len(row) > len(header):
            raise SuiteError(
                f"row has {len(row)} cells but the header names {len(header)} columns",
                file=path,
                line=line,
                hint="quote cells that contain commas",
            )
        test: dict[str, Any] = {"vars": {}, "assert": []}
        for name, cell in zip(header, row, strict=False):
            name = name.strip()
            if name.startswith("__expected"):
                if cell.strip():
                    test["assert"].append(expected_assert(cell, path, line))
            elif name == "__description":
                test["description"] = cell
            elif name == "__threshold":
                test["threshold"] = float(cell) if cell.strip() else None
            elif name.startswith("__metadata:"):
                test.setdefault("metadata", {})[name.split(":", 1)[1]] = cell
            elif name in ("__prefix", "__suffix", "__metric") or name.startswith("__config:"):
                continue
            else:
                test["vars"][name] = cell
        if "__metric" in header:
            metric = row[header.index("__metric")]
            for entry in test["assert"]:
                entry["metric"] = metric
        lines.note(test, str(path), line)
        tests.append(test)
    return tests


def _check_header(header: list[str], path: Path) -> None:
    seen: set[str] = set()
    for column, raw in enumerate(header, 1):
        name = raw.strip()
        if not name:
            raise SuiteError(
                f"column {column} of the CSV header is empty",
                file=path,
                line=1,
                hint="the first row names each column: a var name or __expected",
            )
        if name in seen:
            raise SuiteError(f"column {name!r} appears twice in the header", file=path, line=1)
        seen.add(name)
        if name.startswith("__") and not (
            name.startswith(SPECIAL) or name.startswith(("__metadata:", "__config:"))
        ):
            raise SuiteError(
                f"unknown special column {name!r} in the CSV header",
                file=path,
                line=1,
                hint="special columns are __expected, __expected1.., __description, __metric, "
                "__threshold, __metadata:KEY; a var name must not start with __",
            )


def expected_assert(cell: str, path: Path, line: int) -> dict[str, Any]:
    text = cell.strip()
    for prefix, kind in (("grade:", "llm-rubric"), ("llm-rubric:", "llm-rubric")):
        if text.startswith(prefix):
            return {"type": kind, "value": text[len(prefix) :].strip()}
    for prefix in ("javascript:", "fn:", "eval:"):
        if text.startswith(prefix):
            return {"type": "javascript", "value": text[len(prefix) :].strip()}
    if text.startswith("python:"):
        return {"type": "python", "value": text[len("python:") :].strip()}
    match = _TYPED.match(text)
    if match and match.group(2) in known_types():
        inverse, kind, threshold, value = match.groups()
        entry: dict[str, Any] = {"type": (inverse or "") + kind}
        if value:
            entry["value"] = value
        if threshold is not None:
            entry["threshold"] = float(threshold)
        return entry
    if match and (match.group(1) or _looks_typed(match.group(2))):
        raise SuiteError(
            f"unknown assertion type {match.group(2)!r} in __expected",
            file=path,
            line=line,
            hint="write TYPE: VALUE with a promptfoo type (contains, regex, similar(0.8)...)",
        )
    return {"type": "equals", "value": cell}


def _looks_typed(word: str) -> bool:
    # "note: hi" is an equals value, "contain: x" a typo of a type: only words with a dash
    # or close to a known type are taken as an attempted type.
    import difflib

    return "-" in word and bool(difflib.get_close_matches(word, known_types(), n=1, cutoff=0.8))
