"""What a suite is once loaded, and what one call through the gateway gave back.

The shapes follow promptfoo's (``prompts``, ``providers``, ``tests`` with ``vars`` and
``assert``), so the JSON report can be written in promptfoo's output shape as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Assertion types whose verdict comes from a model: repeated with --repeat, and their
# spread counts as noise in the baseline comparison.
JUDGED = frozenset({"llm-rubric", "factuality", "answer-relevance", "model-graded-closedqa"})


@dataclass(slots=True)
class AssertSpec:
    type: str  # without the not- prefix
    inverse: bool = False
    value: Any = None
    threshold: float | None = None
    weight: float = 1.0
    metric: str | None = None
    children: list[AssertSpec] = field(default_factory=list)  # assert-set
    config: dict[str, Any] = field(default_factory=dict)
    provider: Any = None
    raw: dict[str, Any] = field(default_factory=dict)  # as written, for the report
    where: tuple[str | None, int | None] = (None, None)

    @property
    def judged(self) -> bool:
        return self.type in JUDGED or any(c.judged for c in self.children)


@dataclass(slots=True)
class Case:
    vars: dict[str, Any]
    asserts: list[AssertSpec]
    description: str | None = None
    threshold: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    where: tuple[str | None, int | None] = (None, None)

    def key(self) -> str:
        """Stable across runs: how a baseline finds the same case again."""
        if self.description:
            return self.description
        return json.dumps(self.vars, sort_keys=True, default=str)


@dataclass(slots=True)
class Prompt:
    raw: str  # the template, text or chat-format JSON
    label: str

    @property
    def id(self) -> str:
        return self.label


@dataclass(slots=True)
class Provider:
    id: str  # as written: openai:chat:NAME
    target: str  # the bounded feature or model that answers
    label: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def echo(self) -> bool:
        return self.id == "echo"


@dataclass(slots=True)
class Suite:
    path: Path
    description: str | None
    prompts: list[Prompt]
    providers: list[Provider]
    cases: list[Case]
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.path.parent


@dataclass(slots=True)
class Output:
    """One answer: what the assertions grade."""

    text: str = ""
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    latency_ms: float = 0.0
    cost: float = 0.0
    tokens: dict[str, int] = field(
        default_factory=lambda: {"total": 0, "prompt": 0, "completion": 0, "cached": 0}
    )
    error: str | None = None
    trace_id: str | None = None
    route: str | None = None
    contexts: list[str] = field(default_factory=list)  # cited chunks (retrieval)

    def graded_value(self) -> Any:
        """What promptfoo's ``output`` is: the text, or the tool calls when there is none."""
        if self.tool_calls and not self.text:
            return self.tool_calls
        return self.text

    def as_string(self) -> str:
        value = self.graded_value()
        return value if isinstance(value, str) else json.dumps(value)
