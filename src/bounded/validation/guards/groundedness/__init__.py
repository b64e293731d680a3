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

Modules: ``sentences`` (the answer cut into sentences, citations, content words),
``support`` (lexical and embedding support, their combination), ``report`` (the scores),
``scorer`` (:class:`GroundednessScorer`, :func:`score_answer`), ``guard`` (the guard).
"""

from bounded.retrieval.ingest.tokens import split_sentences
from bounded.validation.guards.groundedness.guard import KIND, Groundedness, factory, findings
from bounded.validation.guards.groundedness.report import (
    DEFAULT_MIN_SCORE,
    SCORE_FLOOR,
    GroundednessReport,
    SentenceScore,
    Status,
    overall_score,
)
from bounded.validation.guards.groundedness.scorer import (
    CANDIDATES,
    EMBED_ALL_UNDER,
    MAX_SENTENCES,
    MIN_CONTENT_WORDS,
    GroundednessScorer,
    score_answer,
)
from bounded.validation.guards.groundedness.sentences import (
    STOP_WORDS,
    content_words,
    sentence_spans,
)
from bounded.validation.guards.groundedness.support import (
    CACHE_SIZE,
    COMBINED,
    LEXICAL_ONLY,
    MAX_SOURCE_SENTENCES,
    WINDOW,
    combine,
    local_embedding_installed,
)

__all__ = [
    "CACHE_SIZE",
    "CANDIDATES",
    "COMBINED",
    "DEFAULT_MIN_SCORE",
    "EMBED_ALL_UNDER",
    "KIND",
    "LEXICAL_ONLY",
    "MAX_SENTENCES",
    "MAX_SOURCE_SENTENCES",
    "MIN_CONTENT_WORDS",
    "SCORE_FLOOR",
    "STOP_WORDS",
    "WINDOW",
    "Groundedness",
    "GroundednessReport",
    "GroundednessScorer",
    "SentenceScore",
    "Status",
    "combine",
    "content_words",
    "factory",
    "findings",
    "local_embedding_installed",
    "overall_score",
    "score_answer",
    "sentence_spans",
    "split_sentences",
]
