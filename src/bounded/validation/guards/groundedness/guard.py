"""The groundedness guard: a scorer behind the registry's ``groundedness`` name, its report
turned into findings."""

from __future__ import annotations

from typing import Any

from bounded.validation.guards.base import Finding, GuardConfigError, ScanContext
from bounded.validation.guards.groundedness.report import DEFAULT_MIN_SCORE, GroundednessReport
from bounded.validation.guards.groundedness.scorer import GroundednessScorer

KIND = "groundedness"


class Groundedness:
    """The ``groundedness`` guard: one whole-text finding (``start == end == 0``, the
    overall score) and one finding per unsupported sentence (its span and score).

    Options: ``min_score`` (0 to 1, default DEFAULT_MIN_SCORE), ``embedding`` (true, false;
    default: true when the ``local`` extra is installed)."""

    kind = KIND

    def __init__(self, options: dict[str, Any] | None = None, *, embedder: Any = None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - {"min_score", "embedding"})
        if unknown:
            raise GuardConfigError(
                f"groundedness: unknown option(s) {', '.join(unknown)}; known: min_score, embedding"
            )
        min_score = options.get("min_score", DEFAULT_MIN_SCORE)
        if isinstance(min_score, bool) or not isinstance(min_score, int | float):
            raise GuardConfigError("groundedness min_score must be a number from 0 to 1")
        if not 0.0 <= float(min_score) <= 1.0:
            raise GuardConfigError(f"groundedness min_score {min_score} is not between 0 and 1")
        embedding = options.get("embedding")
        if embedding is not None and not isinstance(embedding, bool):
            raise GuardConfigError("groundedness embedding must be true or false")
        self.min_score = float(min_score)
        self.scorer = GroundednessScorer(
            embedding=embedding, min_score=self.min_score, embedder=embedder
        )

    def report(self, text: str, context: ScanContext) -> GroundednessReport:
        return self.scorer.score(text, context.sources)

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        try:
            report = self.report(text, context)
        except Exception as exc:  # never raise on odd text: say it could not decide
            return [Finding(KIND, 0, 0, 0.0, f"not scored: {type(exc).__name__}")]
        return findings(report)


def findings(report: GroundednessReport) -> list[Finding]:
    claims = [s for s in report.sentences if s.score is not None]
    unsupported = report.unsupported()
    if report.status == "no_claims":
        summary = "no claims to check"
    elif report.status == "no_sources":
        summary = f"no sources for {len(claims)} claim(s)"
    else:
        method = "lexical+embedding" if report.embedding else "lexical"
        summary = (
            f"{len(claims) - len(unsupported)} of {len(claims)} sentences supported ({method})"
        )
    detail = "; ".join([summary, *report.notes])
    out = [Finding(KIND, 0, 0, report.overall, detail)]
    for s in unsupported:
        note = f"sentence {s.index} unsupported"
        if s.cited:
            note += f" (cites {', '.join(f'[{k}]' for k in s.cited)})"
        out.append(Finding(KIND, s.start, s.end, s.score or 0.0, note))
    return out


def factory(options: dict[str, Any]) -> Groundedness:
    return Groundedness(options)
