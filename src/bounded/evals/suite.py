"""Load a promptfoo config (``promptfooconfig.yaml``) as written into a :class:`Suite`.

    suite = load_suite(Path("promptfooconfig.yaml"), target="support-answer")

Read: ``description``, ``prompts`` (strings, ``file://`` text split on ``---``, chat-format
JSON, ``{id, label}`` / ``{raw, label}`` objects), ``providers`` (``openai:chat:NAME`` and
``openai:NAME`` are bounded's feature or model NAME; ``echo`` answers with the prompt),
``tests`` (inline or ``file://`` YAML/JSON/JSONL/CSV, globs), ``defaultTest``, ``vars``
with ``file://`` values, ``scenarios``. Each problem is a :class:`SuiteError` with file,
line and hint.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from bounded.evals.asserts import parse_asserts, refuse_javascript
from bounded.evals.csvtests import csv_tests
from bounded.evals.errors import SuiteError
from bounded.evals.model import Case, Prompt, Provider, Suite
from bounded.evals.yamlio import Lines, expand, is_ref, load_data, load_yaml, read_text

PROVIDER_PREFIXES = ("openai:chat:", "openai:responses:", "openai:completion:", "openai:")


def load_suite(path: Path, *, target: str | None = None) -> Suite:
    lines = Lines()
    raw = load_yaml(path, lines)
    if not isinstance(raw, dict):
        raise SuiteError(
            "a suite is a mapping with prompts, providers and tests",
            file=path,
            line=1,
            hint="see docs/evals.md for a minimal promptfooconfig.yaml",
        )
    base = path.parent
    prompts = _prompts(raw.get("prompts"), base, lines, path, lines.key(raw, "prompts"))
    providers = _providers(raw.get("providers", raw.get("targets")), target, lines, path)
    default = _default_test(raw.get("defaultTest"), base, lines)
    cases: list[Case] = []
    for test in _tests(raw.get("tests"), base, lines, path, lines.key(raw, "tests")):
        cases.extend(_cases(test, default, base, lines))
    for scenario in _list(raw.get("scenarios")):
        cases.extend(_scenario(scenario, default, base, lines))
    if not cases:
        cases.extend(_cases({}, default, base, lines))
    return Suite(path, raw.get("description"), prompts, providers, cases, raw)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _prompts(
    value: Any, base: Path, lines: Lines, path: Path, at: tuple[str | None, int | None]
) -> list[Prompt]:
    if value is None:
        raise SuiteError("the suite has no prompts", file=path, hint="add `prompts: ['{{input}}']`")
    prompts: list[Prompt] = []
    for item in _list(value):
        label = None
        if isinstance(item, dict):
            label = item.get("label")
            item = item.get("raw", item.get("id"))
        if not isinstance(item, str):
            file, line = lines.of(value)
            raise SuiteError(
                f"a prompt must be a string or file:// path, not {type(item).__name__}",
                file=file,
                line=line,
            )
        if is_ref(item):
            for found in expand(item, base, at if not isinstance(value, list) else lines.of(value)):
                text = read_text(found)
                parts = [text] if found.suffix == ".json" else _split(text)
                for i, part in enumerate(parts):
                    name = label or f"{found.name}" + (f": {i + 1}" if len(parts) > 1 else "")
                    prompts.append(Prompt(part, name))
        else:
            prompts.append(Prompt(item, label or item))
    return prompts


def _split(text: str) -> list[str]:
    """promptfoo splits a text prompt file on lines of ``---``."""
    parts = [p.strip() for p in text.split("\n---\n")]
    return [p for p in parts if p] or [text]


def provider_target(pid: str) -> str | None:
    for prefix in PROVIDER_PREFIXES:
        if pid.startswith(prefix) and len(pid) > len(prefix):
            return pid[len(prefix) :]
    return None


def _providers(value: Any, target: str | None, lines: Lines, path: Path) -> list[Provider]:
    items = _list(value)
    if not items:
        if target is None:
            raise SuiteError(
                "the suite has no providers",
                file=path,
                hint="add `providers: [openai:chat:FEATURE]` or pass --target FEATURE",
            )
        return [Provider(f"openai:chat:{target}", target, target)]
    providers = []
    for item in items:
        config: dict[str, Any] = {}
        label = None
        if isinstance(item, dict):
            config = dict(item.get("config") or {})
            label = item.get("label")
            pid = item.get("id")
            if pid is None and len(item) == 1:  # {openai:chat:x: {config: ...}}
                pid, options = next(iter(item.items()))
                config = dict((options or {}).get("config") or {})
        else:
            pid = item
        file, line = lines.of(item) if isinstance(item, dict) else lines.of(value)
        if not isinstance(pid, str):
            raise SuiteError("a provider needs an id", file=file, line=line)
        if pid == "echo":
            providers.append(Provider(pid, "echo", label or "echo", config))
            continue
        name = provider_target(pid)
        if name is None and target is None:
            raise SuiteError(
                f"unknown provider {pid!r}",
                file=file,
                line=line,
                hint="bounded runs openai:chat:NAME and openai:NAME, where NAME is a feature "
                "or model of bounded.yaml (or pass --target FEATURE to run every provider "
                "against it)",
            )
        chosen = target or name
        assert chosen is not None
        providers.append(Provider(pid, chosen, label or pid, config))
    return providers


def _default_test(value: Any, base: Path, lines: Lines) -> dict[str, Any]:
    if is_ref(value):
        value = load_data(expand(value, base, (None, None))[0], lines)
    return value if isinstance(value, dict) else {}


def _tests(
    value: Any,
    base: Path,
    lines: Lines,
    path: Path,
    at: tuple[str | None, int | None] = (None, None),
) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = []
    for item in _list(value):
        if is_ref(item):
            where = lines.of(value) if isinstance(value, list) else at
            for found in expand(item, base, where if where[0] else (str(path), None)):
                tests.extend(_tests_file(found, lines))
        elif isinstance(item, dict):
            tests.append(item)
        else:
            file, line = lines.of(value)
            raise SuiteError(
                f"a test must be a mapping or file:// path, not {item!r}",
                file=file or path,
                line=line,
            )
    return tests


def _tests_file(path: Path, lines: Lines) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        return csv_tests(path, lines)
    data = load_data(path, lines)
    rows = data if isinstance(data, list) else [data]
    bad = [r for r in rows if not isinstance(r, dict)]
    if bad:
        raise SuiteError(
            f"tests in {path.name} must be mappings", file=path, hint="each test has vars/assert"
        )
    return rows


def _vars(value: Any, base: Path, lines: Lines) -> dict[str, Any]:
    if is_ref(value):
        value = load_data(expand(value, base, (None, None))[0], lines)
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {}
    for name, v in value.items():
        if is_ref(v):
            found = expand(v, base, lines.key(value, name))
            loaded = [load_data(p, lines) for p in found]
            out[name] = loaded[0] if len(loaded) == 1 else loaded
        else:
            out[name] = v
    return out


def _cases(test: dict[str, Any], default: dict[str, Any], base: Path, lines: Lines) -> list[Case]:
    where = lines.of(test)
    variables = {**_vars(default.get("vars"), base, lines), **_vars(test.get("vars"), base, lines)}
    asserts = parse_asserts(_list(default.get("assert")), base, lines, where)
    asserts += parse_asserts(_list(test.get("assert")), base, lines, where)
    refuse_javascript(asserts, test)
    options = {**(default.get("options") or {}), **(test.get("options") or {})}
    for js in ("transform", "postprocess"):
        if js in options:
            raise SuiteError(
                f"options.{js} is JavaScript, which bounded does not run",
                file=where[0],
                line=where[1],
                hint="grade the raw output, or do the transformation in a python assertion",
            )
    metadata = {**(default.get("metadata") or {}), **(test.get("metadata") or {})}
    threshold = test.get("threshold", default.get("threshold"))
    cases = []
    for combo in _combinations(variables):
        cases.append(
            Case(combo, asserts, test.get("description"), threshold, options, metadata, test, where)
        )
    return cases


def _combinations(variables: dict[str, Any]) -> list[dict[str, Any]]:
    """A var given as a list of strings runs once per value, as in promptfoo."""
    lists = {
        k: v
        for k, v in variables.items()
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v)
    }
    if not lists:
        return [variables]
    names = list(lists)
    return [
        {**variables, **dict(zip(names, values, strict=True))}
        for values in itertools.product(*(lists[n] for n in names))
    ]


def _scenario(scenario: Any, default: dict[str, Any], base: Path, lines: Lines) -> list[Case]:
    if is_ref(scenario):
        scenario = load_data(expand(scenario, base, (None, None))[0], lines)
    if not isinstance(scenario, dict):
        return []
    cases = []
    for data in _list(scenario.get("config")) or [{}]:
        for test in _tests(scenario.get("tests"), base, lines, Path("scenario")):
            merged = {
                **data,
                **test,
                "vars": {**(data.get("vars") or {}), **(test.get("vars") or {})},
                "assert": _list(data.get("assert")) + _list(test.get("assert")),
            }
            file, line = lines.of(test)
            if file is not None and line is not None:
                lines.note(merged, file, line)
            cases.extend(_cases(merged, default, base, lines))
    return cases
