"""What an assertion gets and gives: :class:`Context` in, :class:`Grade` out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bounded.evals.model import AssertSpec, Case, Output, Provider


class Judge(Protocol):
    """A bounded model that grades (llm-rubric, factuality...) and MiniLM for similarity."""

    async def complete(self, messages: list[dict[str, str]]) -> tuple[str, dict[str, int]]: ...

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class Misconfigured(Exception):
    """The assertion as written cannot be evaluated (promptfoo's invariant failures):
    the case is reported as an error, as promptfoo does."""


@dataclass(slots=True)
class Grade:
    passed: bool
    score: float
    reason: str
    assertion: dict[str, Any] | None = None
    named_scores: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    components: list[Grade] = field(default_factory=list)
    error: bool = False

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pass": self.passed, "score": self.score, "reason": self.reason}
        if self.assertion is not None:
            out["assertion"] = self.assertion
        if self.named_scores:
            out["namedScores"] = self.named_scores
        if self.tokens:
            out["tokensUsed"] = self.tokens
        if self.components:
            out["componentResults"] = [c.as_json() for c in self.components]
        return out


def verdict(passed: bool, reason_if_failed: str, spec: AssertSpec | None = None) -> Grade:
    return Grade(passed, 1.0 if passed else 0.0, "Assertion passed" if passed else reason_if_failed)


@dataclass(slots=True)
class Context:
    spec: AssertSpec
    value: Any  # rendered with the case's vars
    output: Output
    case: Case
    prompt: str
    provider: Provider
    base: Path
    judge: Judge | None = None

    @property
    def text(self) -> str:
        return self.output.as_string()

    @property
    def inverse(self) -> bool:
        return self.spec.inverse

    def need_judge(self) -> Judge:
        if self.judge is None or getattr(self.judge, "model", True) is None:
            raise Misconfigured(
                f"{self.spec.type} needs a judge model: set `evals.judge` in bounded.yaml "
                "or `provider:` on the assertion (the embedded SmolLM2-135M is too weak to judge)"
            )
        return self.judge


Handler = Callable[[Context], Grade | Awaitable[Grade]]
