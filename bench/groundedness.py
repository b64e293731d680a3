"""Groundedness scorer quality and speed on SciFact claims and abstracts.

    .venv/bin/python bench/groundedness.py --data ../shared/data/scifact
    .venv/bin/python bench/groundedness.py --data ../shared/data/scifact --fit   # refit constants

SciFact's claims are short statements written by annotators from an abstract, which is
close to what a model writes from a retrieved chunk; each judged claim names the abstracts
that SUPPORT it, CONTRADICT it, or were cited without enough information (NEI). Labelled
pairs built from them:

- one-sentence answers: a claim against the abstract that supports it (grounded); against a
  random abstract (not); against its BM25 near miss, the top non-relevant abstract by BM25
  over the corpus (not: the same topic, not the same statement; SciFact's judgements are
  incomplete, so a few of these are supported after all). Reported apart and not used to
  fit: a claim against the abstract that contradicts it, and an NEI claim against its
  cited abstract (both "not supported", and both mostly out of reach of word and
  embedding overlap).
- three-sentence answers: three claims, each citing its own supporting abstract as [k]
  (grounded), and the same with one claim swapped for a fabricated one that keeps the
  citation: a random other claim, or the claim nearest by BM25 to the replaced abstract
  among claims that no source supports (same topic, different statement). Scored for the
  answer (overall score) and for the span (is the swapped sentence the one flagged?).

Claims are split by a hash of their id (as bench/retrieval_scifact.py does): ``--fit``
fits the logistic weights and picks ``min_score`` on the dev half; figures are reported on
the held-out half with the module's shipped constants. Speed: ms per three-sentence answer
with an empty vector cache (new sources every time), per gateway-sized answer (six
sentences against six abstracts), and with the sources' vectors cached. The last line of
stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bounded.validation.guards import groundedness as g


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def split_of(query_id: str) -> str:
    """Stable and blind to content: the first byte of a hash of the id decides."""
    return "dev" if hashlib.sha256(query_id.encode()).digest()[0] % 2 == 0 else "heldout"


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    support: tuple[str, ...]
    contradict: tuple[str, ...]
    cited: tuple[str, ...]  # every judged abstract (qrels)


@dataclass(frozen=True)
class Case:
    kind: str
    label: int  # 1: grounded
    answer: str
    sources: tuple[str, ...]
    fabricated: int | None = None  # 1-based sentence swapped in


def load(data: Path) -> tuple[dict[str, str], list[Claim]]:
    corpus = {}
    for line in (data / "corpus.jsonl").open():
        row = json.loads(line)
        corpus[row["_id"]] = row["text"]
    cited: dict[str, list[str]] = {}
    for line in (data / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        query, doc, score = line.split("\t")
        if int(score) > 0:
            cited.setdefault(query, []).append(doc)
    claims = []
    for line in (data / "queries.jsonl").open():
        row = json.loads(line)
        labels: dict[str, list[str]] = {"SUPPORT": [], "CONTRADICT": []}
        for doc, evidence in (row.get("metadata") or {}).items():
            for item in evidence:
                labels.setdefault(item["label"], []).append(doc)
        claims.append(
            Claim(
                row["_id"],
                row["text"],
                tuple(dict.fromkeys(labels["SUPPORT"])),
                tuple(dict.fromkeys(labels["CONTRADICT"])),
                tuple(cited.get(row["_id"], ())),
            )
        )
    return corpus, claims


class BM25:
    """Plain BM25 (k1 1.2, b 0.75) over the scorer's own content words."""

    def __init__(self, docs: dict[str, str]) -> None:
        self.ids = list(docs)
        self.postings: dict[str, list[tuple[int, int]]] = {}
        self.lengths: list[int] = []
        for i, doc_id in enumerate(self.ids):
            words = g.content_words(docs[doc_id])
            self.lengths.append(len(words))
            counts: dict[str, int] = {}
            for w in words:
                counts[w] = counts.get(w, 0) + 1
            for w, c in counts.items():
                self.postings.setdefault(w, []).append((i, c))
        self.mean_length = statistics.mean(self.lengths)

    def top(self, text: str, k: int = 20) -> list[str]:
        n = len(self.ids)
        scores: dict[int, float] = {}
        for w in set(g.content_words(text)):
            posting = self.postings.get(w, [])
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for i, tf in posting:
                norm = tf + 1.2 * (0.25 + 0.75 * self.lengths[i] / self.mean_length)
                scores[i] = scores.get(i, 0.0) + idf * tf * 2.2 / norm
        best = sorted(scores, key=lambda i: -scores[i])[:k]
        return [self.ids[i] for i in best]


def cited_answer(claims: Sequence[str]) -> str:
    return " ".join(f"{c.rstrip().rstrip('.')} [{k}]." for k, c in enumerate(claims, 1))


def build_cases(corpus: dict[str, str], claims: list[Claim], bm25: BM25, seed: int) -> list[Case]:
    rng = random.Random(seed)
    docs = list(corpus)
    # Abstracts any claim with the same text cites: never a "non-relevant" source for it.
    judged: dict[str, set[str]] = {}
    for c in claims:
        judged.setdefault(c.text, set()).update(c.cited)
    cases: list[Case] = []
    supported = [c for c in claims if c.support]
    for c in claims:
        seen = judged[c.text]
        if c.support:
            cases.append(Case("support", 1, c.text, (corpus[c.support[0]],)))
            other = rng.choice([d for d in rng.sample(docs, 5) if d not in seen])
            cases.append(Case("random", 0, c.text, (corpus[other],)))
            near = next(d for d in bm25.top(c.text) if d not in seen)
            cases.append(Case("near_miss", 0, c.text, (corpus[near],)))
        if c.contradict and not c.support:
            cases.append(Case("contradict", 0, c.text, (corpus[c.contradict[0]],)))
        if c.cited and not c.support and not c.contradict:
            cases.append(Case("nei", 0, c.text, (corpus[c.cited[0]],)))
    rng.shuffle(supported)
    pool = list(supported)
    for start in range(0, len(supported) - 2, 3):
        group = supported[start : start + 3]
        if len({c.support[0] for c in group}) < 3:
            continue
        sources = tuple(corpus[c.support[0]] for c in group)
        texts = [c.text for c in group]
        cases.append(Case("answer", 1, cited_answer(texts), sources))
        used = {d for c in group for d in c.cited}
        swap = rng.randrange(3)
        strangers = [s for s in pool if not (set(s.cited) & used) and s.text not in texts]
        fake = rng.choice(strangers)
        cases.append(
            Case(
                "swap_random", 0, cited_answer(_swapped(texts, swap, fake.text)), sources, swap + 1
            )
        )
        near = _nearest_claim(sources[swap], strangers, bm25, corpus)
        cases.append(
            Case("swap_near", 0, cited_answer(_swapped(texts, swap, near.text)), sources, swap + 1)
        )
    return cases


def _swapped(texts: list[str], at: int, fake: str) -> list[str]:
    return [fake if i == at else t for i, t in enumerate(texts)]


def _nearest_claim(
    source: str, candidates: list[Claim], bm25: BM25, corpus: dict[str, str]
) -> Claim:
    """The candidate claim whose supporting abstract BM25 ranks highest for ``source``'s
    opening sentences: a same-topic statement that the source does not make."""
    ranked = bm25.top(" ".join(g.split_sentences(source)[:3]), k=200)
    by_doc = {c.support[0]: c for c in candidates}
    for doc in ranked:
        if doc in by_doc and corpus[doc] != source:
            return by_doc[doc]
    return candidates[0]


@dataclass
class Scored:
    case: Case
    overall: float
    features: list[tuple[float, float | None]]  # (lexical, similarity) per scored sentence
    scores: list[float | None]  # per sentence, None where skipped
    weights: list[float]  # per sentence: its content words
    flagged: list[int]  # 1-based sentences under min_score
    ms: float


def score_cases(cases: list[Case], scorer: g.GroundednessScorer) -> list[Scored]:
    out = []
    for case in cases:
        t = time.perf_counter()
        report = scorer.score(case.answer, case.sources)
        ms = (time.perf_counter() - t) * 1000
        feats = [(s.lexical, s.similarity) for s in report.sentences if s.score is not None]
        out.append(
            Scored(
                case,
                report.overall,
                feats,
                [s.score for s in report.sentences],
                [s.weight for s in report.sentences],
                [s.index for s in report.unsupported()],
                ms,
            )
        )
    return out


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    ranked = sorted([(v, 1) for v in positives] + [(v, 0) for v in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + j + 1) / 2
        rank_sum += mean_rank * sum(1 for _, label in ranked[i:j] if label)
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def balanced_accuracy(pos: Sequence[float], neg: Sequence[float], threshold: float) -> float:
    tpr = sum(v >= threshold for v in pos) / len(pos)
    tnr = sum(v < threshold for v in neg) / len(neg)
    return (tpr + tnr) / 2


def overall_by(scored: list[Scored], kind: str) -> list[float]:
    return [s.overall for s in scored if s.case.kind == kind]


def evaluate(scored: list[Scored], min_score: float) -> dict[str, Any]:
    support = overall_by(scored, "support")
    random_ = overall_by(scored, "random")
    near = overall_by(scored, "near_miss")
    answers = overall_by(scored, "answer")
    out: dict[str, Any] = {
        "claims": len(support),
        "auc_vs_random": auc(support, random_),
        "auc_vs_near_miss": auc(support, near),
        "auc_vs_contradict": auc(support, overall_by(scored, "contradict")),
        "auc_vs_nei": auc(support, overall_by(scored, "nei")),
        "balanced_accuracy": balanced_accuracy(support, random_ + near, min_score),
        "flagged": {
            kind: _share(overall_by(scored, kind), lambda v: v < min_score)
            for kind in ("support", "random", "near_miss", "contradict", "nei")
        },
        "answers": len(answers),
    }
    for kind in ("swap_random", "swap_near"):
        swapped = [s for s in scored if s.case.kind == kind]
        fakes = [s.overall for s in swapped]
        out[kind] = {
            "auc_overall": auc(answers, fakes),
            "auc_if_arithmetic_mean": auc(
                [_mean(s) for s in scored if s.case.kind == "answer"], [_mean(s) for s in swapped]
            ),
            "auc_if_min_sentence": auc(
                [_min(s) for s in scored if s.case.kind == "answer"], [_min(s) for s in swapped]
            ),
            "answer_flagged": _share(fakes, lambda v: v < min_score),
            "fabricated_sentence_found": _share(
                [s.case.fabricated in s.flagged for s in swapped], bool
            ),
            "sentence_auc": _sentence_auc(swapped),
        }
    grounded = [s for s in scored if s.case.kind == "answer"]
    out["answer_flagged_grounded"] = _share(answers, lambda v: v < min_score)
    sentences = sum(sum(v is not None for v in s.scores) for s in grounded)
    out["grounded_sentences_flagged"] = sum(len(s.flagged) for s in grounded) / max(1, sentences)
    return out


def _min(s: Scored) -> float:
    return min((v for v in s.scores if v is not None), default=1.0)


def _mean(s: Scored) -> float:
    pairs = [(v, w) for v, w in zip(s.scores, s.weights, strict=True) if v is not None]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else 1.0


def _sentence_auc(swapped: list[Scored]) -> float:
    """Fabricated sentences against the genuine ones of the same answers."""
    fake, real = [], []
    for s in swapped:
        for i, v in enumerate(s.scores, 1):
            if v is not None:
                (fake if i == s.case.fabricated else real).append(v)
    return auc(real, fake)


def _share(values: Sequence[Any], test: Callable[[Any], bool]) -> float:
    return sum(1 for v in values if test(v)) / len(values) if values else float("nan")


# ---- fitting (dev half only) ------------------------------------------------------------


def fit_logistic(rows: list[list[float]], labels: list[int], weights: list[float]) -> list[float]:
    """Weighted logistic regression by Newton's method; a tiny ridge keeps it finite."""
    import numpy as np

    x = np.hstack([np.asarray(rows, dtype=float), np.ones((len(rows), 1))])
    y = np.asarray(labels, dtype=float)
    w = np.asarray(weights, dtype=float)
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ beta)))
        grad = x.T @ (w * (p - y)) + 1e-3 * beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return [round(float(b), 2) for b in beta]


def fit(scored: list[Scored], embedding: bool) -> list[float]:
    rows, labels, weights = [], [], []
    counts = {
        k: sum(1 for s in scored if s.case.kind == k) for k in ("support", "random", "near_miss")
    }
    for s in scored:
        if s.case.kind not in counts or len(s.features) != 1:
            continue
        lex, sim = s.features[0]
        rows.append([lex, sim or 0.0] if embedding else [lex])
        labels.append(s.case.label)
        # Balanced: supported claims weigh as much as both kinds of negative together.
        weights.append(1.0 if s.case.label else counts["support"] / (2 * counts[s.case.kind]))
    return fit_logistic(rows, labels, weights)


def pick_threshold(scored: list[Scored]) -> float:
    """The best mean of two balanced accuracies: one-sentence answers (supported claims
    against random and near-miss abstracts) and three-sentence answers (grounded against
    one swapped sentence); ties go to the value nearest 0.5."""
    support = overall_by(scored, "support")
    negatives = overall_by(scored, "random") + overall_by(scored, "near_miss")
    answers = overall_by(scored, "answer")
    swapped = overall_by(scored, "swap_random") + overall_by(scored, "swap_near")

    def accuracy(t: float) -> float:
        claims = balanced_accuracy(support, negatives, t)
        return (claims + balanced_accuracy(answers, swapped, t)) / 2

    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    return max(grid, key=lambda t: (round(accuracy(t), 4), -abs(t - 0.5)))


# ---- speed --------------------------------------------------------------------------------


def timing(
    cases: list[Case], corpus: dict[str, str], embedder: Any, rng: random.Random
) -> dict[str, float]:
    """Median ms per answer with an empty vector cache (a fresh scorer for each answer):
    three-sentence answers against their three abstracts, six-sentence answers against six
    abstracts; and three-sentence answers whose sources' vectors are already cached."""
    answers = [c for c in cases if c.kind == "answer"][:60]
    docs = list(corpus.values())
    big = [
        (" ".join(rng.sample([c.answer for c in answers], 2)), tuple(rng.sample(docs, 6)))
        for _ in range(30)
    ]
    out: dict[str, float] = {}
    for name, embedding in (("lexical", False), ("embedding", True)):
        if embedding and embedder is None:
            continue
        for size, items in (
            ("3_sources", [(c.answer, c.sources) for c in answers]),
            ("6_sources", big),
        ):
            times = []
            for answer, sources in items:
                scorer = g.GroundednessScorer(
                    embedding=embedding, embedder=embedder if embedding else None
                )
                t = time.perf_counter()
                scorer.score(answer, sources)
                times.append((time.perf_counter() - t) * 1000)
            out[f"ms_{name}_{size}"] = round(statistics.median(times), 2)
    if embedder is not None:
        # The chunks seen before (their sentence vectors cached), the answer new: scoring the
        # sources' own text first puts every source sentence in the cache.
        times = []
        for c in answers:
            scorer = g.GroundednessScorer(embedding=True, embedder=embedder)
            scorer.score(" ".join(c.sources), c.sources)
            t = time.perf_counter()
            scorer.score(c.answer, c.sources)
            times.append((time.perf_counter() - t) * 1000)
        out["ms_embedding_3_sources_cached"] = round(statistics.median(times), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--fit", action="store_true", help="refit constants on the dev half")
    parser.add_argument("--no-embedding", action="store_true")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    corpus, claims = load(args.data)
    t = time.perf_counter()
    bm25 = BM25(corpus)
    log(f"BM25 over {len(corpus)} abstracts in {time.perf_counter() - t:.1f} s")
    splits = {
        name: build_cases(corpus, [c for c in claims if split_of(c.id) == name], bm25, args.seed)
        for name in ("dev", "heldout")
    }
    embedder = None
    if not args.no_embedding and g.local_embedding_installed():
        from bounded.providers.local_embed import MiniLMEmbedder

        embedder = MiniLMEmbedder()
        embedder.load()
    results: dict[str, Any] = {"min_score": g.DEFAULT_MIN_SCORE}
    for method, embedding in (("lexical", False), ("embedding", True)):
        if embedding and embedder is None:
            continue
        scorer = g.GroundednessScorer(embedding=embedding, embedder=embedder)
        scored = {name: score_cases(cases, scorer) for name, cases in splits.items()}
        if args.fit:
            constants = fit(scored["dev"], embedding)
            log(f"{method}: fitted on dev: {constants}")
            results[f"{method}_fitted"] = constants
        dev_threshold = pick_threshold(scored["dev"])
        results[method] = {
            "dev_best_min_score": dev_threshold,
            "dev": evaluate(scored["dev"], g.DEFAULT_MIN_SCORE),
            "heldout": evaluate(scored["heldout"], g.DEFAULT_MIN_SCORE),
        }
        report(method, results[method])
    results["speed"] = timing(splits["heldout"], corpus, embedder, random.Random(args.seed))
    log(f"speed (median ms per answer, empty cache): {results['speed']}")
    print(json.dumps(_rounded(results), sort_keys=True))


def report(method: str, figures: dict[str, Any]) -> None:
    held = figures["heldout"]
    log(
        f"{method}: held-out {held['claims']} claims: AUC vs random {held['auc_vs_random']:.3f}, "
        f"vs near miss {held['auc_vs_near_miss']:.3f}, vs contradict "
        f"{held['auc_vs_contradict']:.3f}, vs NEI {held['auc_vs_nei']:.3f}; balanced accuracy "
        f"{held['balanced_accuracy']:.3f} at {g.DEFAULT_MIN_SCORE} (dev's best "
        f"{figures['dev_best_min_score']}); flagged {held['flagged']}"
    )
    for kind in ("swap_random", "swap_near"):
        log(f"{method}: {kind}: {held[kind]}")
    log(
        f"{method}: grounded answers flagged {held['answer_flagged_grounded']:.3f}, "
        f"their sentences flagged {held['grounded_sentences_flagged']:.3f}"
    )


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


if __name__ == "__main__":
    main()
