"""The prompt file: YAML, one version of one feature's prompt (docs/prompts.md).

    system: |
      You are the support assistant for {{ product }}. Answer in {{ language }}.
    messages:                      # optional, after system and before the client's turns
      - role: user
        content: "My plan: {{ plan }}"
    params: {temperature: 0.2, max_tokens: 400}
    variables: {language: English}  # defaults; the others are required per request

Every error names the file, the line and the field, with a hint: the same standard as
``bounded config check``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bounded.prompts.template import PromptFormatError, PromptTemplate

MAX_FILE_BYTES = 1_000_000
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class PromptFileError(ValueError):
    def __init__(self, file: str, line: int, message: str, hint: str | None = None):
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file, self.line, self.message, self.hint = file, line, message, hint


def read_prompt_file(path: Path) -> PromptTemplate:
    """The file's template, or PromptFileError with file, line and hint."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PromptFileError(name, 0, "no such file", "check the path") from None
    except OSError as exc:
        raise PromptFileError(name, 0, f"cannot read it: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PromptFileError(name, 0, f"is {len(raw)} bytes; a prompt file is at most 1 MB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptFileError(name, 0, f"is not UTF-8 text ({exc.reason})") from None
    return parse_prompt_text(text, name)


def parse_prompt_text(text: str, name: str = "<prompt>") -> PromptTemplate:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise PromptFileError(
            name,
            line,
            f"YAML syntax error: {exc.problem or exc}",
            "check the indentation and quote strings that hold ': ' or start with '{'",
        ) from None
    except yaml.YAMLError as exc:
        raise PromptFileError(name, 0, f"YAML error: {exc}") from None
    try:
        return PromptTemplate.parse(data if data is not None else {})
    except PromptFormatError as exc:
        line = _line_of(node, exc.path)
        if exc.line and (exc.path == "system" or exc.path.endswith(".content")):
            line = _template_line(node, exc.path, exc.line) or line
        where = f"{exc.path}: " if exc.path else ""
        raise PromptFileError(name, line, where + exc.message, exc.hint) from None


def _line_of(node: Any, path: str) -> int:
    """The 1-based line of the YAML node at ``path`` (``messages[1].content``), or of the
    deepest node on the way there."""
    if node is None:
        return 0
    line = node.start_mark.line + 1
    for key, index in _PART.findall(path):
        child = None
        if key and isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    child = v
                    break
        elif index and isinstance(node, yaml.SequenceNode):
            i = int(index)
            child = node.value[i] if i < len(node.value) else None
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _template_line(node: Any, path: str, template_line: int) -> int:
    """A line inside a template, in the file: block scalars (``|``) start on the next line."""
    start = _line_of(node, path)
    if not start:
        return 0
    return start + template_line - 1 + (1 if _is_block(node, path) else 0)


def _is_block(node: Any, path: str) -> bool:
    for key, index in _PART.findall(path):
        if key and isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif index and isinstance(node, yaml.SequenceNode):
            node = node.value[int(index)] if int(index) < len(node.value) else None
        if node is None:
            return False
    return isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")


def dump_template(template: PromptTemplate) -> str:
    """The version as a prompt file again (what ``prompt show`` prints, ``diff`` compares)."""
    data: dict[str, Any] = {}
    if template.description:
        data["description"] = template.description
    messages = list(template.messages)
    if messages and messages[0][0] == "system":
        data["system"] = messages.pop(0)[1]
    if messages:
        data["messages"] = [{"role": r, "content": c} for r, c in messages]
    if template.params:
        data["params"] = template.params
    if template.defaults:
        data["variables"] = template.defaults
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Templates are prose: multi-line ones as blocks, readable and diffable line by line.
    style = "|" if "\n" in value and not value.startswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
