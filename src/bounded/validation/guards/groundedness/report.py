"""What scoring an answer returns: each sentence's score and support, the answer's overall
score (a weighted geometric mean), and whether it passed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

# Chosen on SciFact's dev half (bench/groundedness.py): the best balanced accuracy, for
# both scorers, on supported claims against claims on a non-relevant abstract and on
# grounded answers against answers with one sentence swapped.
DEFAULT_MIN_SCORE = 0.5
SCORE_FLOOR = 0.001

Status = Literal["scored", "no_sources", "no_claims"]


@dataclass(frozen=True, slots=True)
class SentenceScore:
    """One sentence of the answer: ``text[start:end]``. ``score`` is None for a sentence
    that makes no claim (``skipped`` says why); ``source`` is the 1-based index of the
    source that supports it best; ``cited`` the indices its markers name."""

    index: int  # 1-based, among all the answer's sentences
    start: int
    end: int
    score: float | None
    lexical: float = 0.0
    similarity: float | None = None  # cosine to the best source sentence; None: not embedded
    source: int | None = None
    cited: tuple[int, ...] = ()
    weight: float = 0.0  # its share in the overall score (content words)
    skipped: str | None = None

    @property
    def miscited(self) -> bool:
        return bool(self.cited) and self.source is not None and self.source not in self.cited

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "start": self.start, "end": self.end}
        out["score"] = None if self.score is None else round(self.score, 4)
        if self.skipped:
            out["skipped"] = self.skipped
            return out
        out["lexical"] = round(self.lexical, 4)
        if self.similarity is not None:
            out["similarity"] = round(self.similarity, 4)
        out["source"] = self.source
        if self.cited:
            out["cited"] = list(self.cited)
        return out


@dataclass(frozen=True)
class GroundednessReport:
    """The answer's score (0 to 1) and each sentence's. ``status``: ``scored``;
    ``no_sources`` (claims but nothing to check them against: overall 0); ``no_claims``
    (nothing to check: overall 1)."""

    overall: float
    sentences: tuple[SentenceScore, ...]
    status: Status
    min_score: float = DEFAULT_MIN_SCORE
    embedding: bool = False
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.overall >= self.min_score

    def unsupported(self, min_score: float | None = None) -> list[SentenceScore]:
        floor = self.min_score if min_score is None else min_score
        return [s for s in self.sentences if s.score is not None and s.score < floor]

    def as_json(self) -> dict[str, Any]:
        return {
            "score": round(self.overall, 4),
            "status": self.status,
            "min_score": self.min_score,
            "method": "lexical+embedding" if self.embedding else "lexical",
            "sentences": [s.as_json() for s in self.sentences],
            **({"notes": list(self.notes)} if self.notes else {}),
        }


def overall_score(sentences: Sequence[SentenceScore]) -> float:
    """The geometric mean of the sentence scores, weighted by content words: the answer's
    per-sentence chance that every claim is supported. Unlike the arithmetic mean, one
    fabricated sentence among supported ones pulls it well down (one at 0.05 beside two
    at 0.9: 0.34 instead of 0.62); unlike the minimum, it does not fall just because
    an answer is long. A score is floored at SCORE_FLOOR before its logarithm."""
    scored = [(s.score, s.weight) for s in sentences if s.score is not None and s.weight > 0]
    if not scored:
        return 1.0
    total = sum(w for _, w in scored)
    return math.exp(sum(w * math.log(max(v, SCORE_FLOOR)) for v, w in scored) / total)
