"""The guard interfaces: a detector scans text into findings; a policy decides.

A finding never holds the matched text itself, only where it is: findings are logged,
stored and returned by ``/v1/guards/check``, and must not become a second copy of the
secret they report.

    class Shouting:
        kind = "shouting"

        def scan(self, text: str, context: ScanContext) -> list[Finding]:
            return [Finding("shouting", m.start(), m.end()) for m in CAPS.finditer(text)]

    registry.register("shouting", lambda options: Shouting())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# What a policy may do when a detector finds something. Not every action fits every
# place: ``drop`` is for retrieved chunks, ``restore`` (a redact option) for input.
Action = Literal["allow", "log", "redact", "block", "drop", "escalate"]
Place = Literal["input", "retrieved", "output"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a detector found: its kind (``email``, ``aws_access_key``,
    ``injection``...), where (character offsets into the scanned text), and how sure.

    ``start == end == 0`` with a ``score`` is a finding about the whole text (an
    injection score, a groundedness score)."""

    kind: str
    start: int
    end: int
    score: float = 1.0
    detail: str | None = None  # safe to log: never the matched value

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "start": self.start, "end": self.end}
        out["score"] = round(self.score, 4)
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class ScanContext:
    """What a detector may want besides the text."""

    place: Place = "input"
    risk_tier: str = "low"
    # For groundedness: the chunks the answer should stand on (their text).
    sources: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


class Detector(Protocol):
    """Finds things in text. Must be thread-safe and never raise on odd text (NUL bytes,
    megabytes of one character, mixed scripts): a detector that cannot decide returns
    what it has and says so in a finding's ``detail``."""

    kind: str

    def scan(self, text: str, context: ScanContext) -> list[Finding]: ...


class DetectorFactory(Protocol):
    def __call__(self, options: dict[str, Any]) -> Detector: ...


class GuardConfigError(ValueError):
    """A guard's options are wrong; the message says which and how to fix it."""
