"""Reading suite files: YAML with line numbers, and promptfoo's ``file://`` references.

Line numbers are kept beside the data (``Lines``), keyed by the identity of each mapping
and list the loader built, so the data stays plain dicts and lists that the rest of the
package reads like promptfoo's JSON, and an error can still point at its line.
"""

from __future__ import annotations

import csv
import glob
import json
from pathlib import Path
from typing import Any

import yaml

from bounded.evals.errors import SuiteError

FILE = "file://"


class Lines:
    """Line numbers (1-based) of the mappings and lists of loaded files."""

    def __init__(self) -> None:
        self._at: dict[int, tuple[str, int]] = {}
        self._keys: dict[tuple[int, Any], tuple[str, int]] = {}
        self._keep: list[Any] = []  # ids are only stable while the objects live

    def note(self, obj: Any, file: str, line: int) -> None:
        self._at[id(obj)] = (file, line)
        self._keep.append(obj)

    def of(self, obj: Any) -> tuple[str | None, int | None]:
        return self._at.get(id(obj), (None, None))

    def note_key(self, mapping: Any, key: Any, file: str, line: int) -> None:
        self._keys[(id(mapping), key)] = (file, line)

    def key(self, mapping: Any, key: Any) -> tuple[str | None, int | None]:
        """Where ``mapping[key]``'s value is written (scalars have no identity of their own)."""
        try:
            return self._keys.get((id(mapping), key)) or self.of(mapping)
        except TypeError:  # an unhashable key
            return self.of(mapping)


def _loader(lines: Lines, file: str) -> type[yaml.SafeLoader]:
    class LineLoader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        data = loader.construct_mapping(node, deep=True)
        lines.note(data, file, node.start_mark.line + 1)
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                lines.note_key(data, key_node.value, file, value_node.start_mark.line + 1)
        return data

    def sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> list[Any]:
        data = loader.construct_sequence(node, deep=True)
        lines.note(data, file, node.start_mark.line + 1)
        return data

    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, sequence)
    return LineLoader


def load_yaml(path: Path, lines: Lines) -> Any:
    text = read_text(path)
    try:
        return yaml.load(text, Loader=_loader(lines, str(path)))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SuiteError(
            f"YAML error: {exc.problem or exc}",
            file=path,
            line=mark.line + 1 if mark else None,
            hint="check the indentation and quoting on that line (a ':' inside a value "
            "needs quotes)",
        ) from None


def read_text(path: Path, *, referenced_at: tuple[str | None, int | None] = (None, None)) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        file, line = referenced_at
        raise SuiteError(
            f"file not found: {path}",
            file=file or path,
            line=line,
            hint="file:// paths are relative to the suite's folder",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"cannot read {path}: {exc}", file=path) from None


def is_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FILE)


def ref_path(value: str, base: Path) -> Path:
    path = Path(value[len(FILE) :])
    return path if path.is_absolute() else base / path


def expand(value: str, base: Path, at: tuple[str | None, int | None]) -> list[Path]:
    """The files a ``file://`` reference names (globs expanded, in sorted order)."""
    path = ref_path(value, base)
    if any(ch in str(path) for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(str(path)))
        if not found:
            raise SuiteError(
                f"no file matches {value}",
                file=at[0],
                line=at[1],
                hint="file:// paths are relative to the suite's folder",
            )
        return found
    if not path.exists():
        raise SuiteError(
            f"file not found: {value} (looked at {path})",
            file=at[0],
            line=at[1],
            hint="file:// paths are relative to the suite's folder",
        )
    return [path]


def load_data(path: Path, lines: Lines) -> Any:
    """A referenced data file: YAML/JSON parsed, JSONL one object a line, else text."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return load_yaml(path, lines)
    if suffix == ".json":
        try:
            return json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise SuiteError(
                f"JSON error: {exc.msg}", file=path, line=exc.lineno, hint="check that line"
            ) from None
    if suffix == ".jsonl":
        return load_jsonl(path, lines)
    return read_text(path)


def load_jsonl(path: Path, lines: Lines) -> list[Any]:
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(
                f"JSON error: {exc.msg}",
                file=path,
                line=number,
                hint="JSONL holds one JSON object per line",
            ) from None
        if isinstance(row, dict):
            lines.note(row, str(path), number)
        rows.append(row)
    return rows


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and rows with their line numbers (a quoted newline spans lines)."""
    text = read_text(path)
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader)
    except StopIteration:
        raise SuiteError(
            "empty CSV file", file=path, line=1, hint="the first row names the vars"
        ) from None
    except csv.Error as exc:
        raise SuiteError(f"CSV error: {exc}", file=path, line=1) from None
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise SuiteError(f"CSV error: {exc}", file=path, line=reader.line_num) from None
    return header, rows
