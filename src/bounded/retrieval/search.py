"""Hybrid search: lexical and dense rankings from the index, fused by reciprocal rank fusion.

    hits = search(index, embedder, "how do I rotate a key", viewer=Viewer.of("ops"), top_k=5)

- Lexical asks the index for chunks holding any of the query's words (stop words dropped;
  FTS5 BM25 in the embedded engine, PostgreSQL full text in scale-out): an AND of all words
  would miss a relevant passage for want of one word.
- Dense asks the index for the nearest chunks to the query's embedding (an exact int8 scan
  embedded, HNSW in pgvector).
- Both see only what the viewer may see and what the filters allow, inside the index query.
- RRF (k=60) adds 1/(k + rank) from each list, so neither score scale dominates.
- MMR, when asked for, re-picks from the fused candidates, trading relevance for diversity.
"""

from __future__ import annotations

import functools
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bounded.retrieval.access import Viewer
from bounded.retrieval.embedding import Embedder, Matrix
from bounded.retrieval.engines.index import ChunkRecord, RowRange, SearchableIndex

Mode = Literal["bm25", "dense", "hybrid"]
RRF_K = 60
CANDIDATES = 100
MAX_QUERY_TERMS = 64

STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Hit:
    chunk: ChunkRecord
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None

    def as_json(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "chunk_id": c.chunk_id,
            "doc_id": c.doc_id,
            "source": c.item,
            "title": c.title,
            "headings": list(c.headings),
            "position": c.position,
            "text": c.text,
            "metadata": c.metadata,
            "score": round(self.score, 6),
            "bm25_rank": self.bm25_rank,
            "dense_rank": self.dense_rank,
        }


def query_terms(query: str) -> list[str]:
    """Distinct non-stop words, at most MAX_QUERY_TERMS: a pasted page as a question must
    not become a thousand-way OR."""
    seen: dict[str, None] = {}
    for word in _WORDS.findall(query.lower()):
        if word not in STOP_WORDS:
            seen.setdefault(word, None)
            if len(seen) == MAX_QUERY_TERMS:
                break
    return list(seen)


def search(
    index: SearchableIndex,
    embedder: Embedder | None,
    query: str,
    *,
    viewer: Viewer,
    top_k: int = 10,
    mode: Mode = "hybrid",
    filters: dict[str, Any] | None = None,
    mmr_lambda: float | None = None,
    candidates: int = CANDIDATES,
) -> list[Hit]:
    filters = filters or {}
    if embedder is None:
        mode = "bm25"  # a collection without embeddings answers every mode lexically
    pool = max(candidates, top_k * 4 if mmr_lambda is not None else top_k)
    dense: list[tuple[int, float]] = []
    terms = query_terms(query) if mode in ("bm25", "hybrid") else []
    lexical = _Lexical(index, terms, viewer, filters, pool, beside=mode == "hybrid")
    vector: Matrix | None = None
    if embedder is not None and query.strip() and (mode != "bm25" or mmr_lambda is not None):
        vector = embedder.embed([query])[0]
    if mode in ("dense", "hybrid") and vector is not None:
        dense = index.dense(vector, viewer, filters, pool, one_core=lexical.beside_dense)
    lexical_ranked = lexical.result()
    fused = _fuse(lexical_ranked, dense) if mode == "hybrid" else lexical_ranked or dense
    ranks_b = {cid: r for r, (cid, _) in enumerate(lexical_ranked, 1)}
    ranks_d = {cid: r for r, (cid, _) in enumerate(dense, 1)}
    if mmr_lambda is not None and len(fused) > top_k and vector is not None:
        fused = _mmr(fused[: max(top_k * 4, 20)], index, vector, mmr_lambda, top_k)
    chosen = fused[:top_k]
    records = index.chunk_records([cid for cid, _ in chosen])
    return [
        Hit(records[cid], score, ranks_b.get(cid), ranks_d.get(cid))
        for cid, score in chosen
        if cid in records
    ]


class _Lexical:
    """The lexical half of a search, started at once.

    SQLite, PostgreSQL's client, onnxruntime and SimSIMD all release the GIL, so in hybrid
    mode a worker thread runs BM25 while this thread embeds the query and scans the vectors.
    BM25 alone, on an index that says slicing pays, is cut in two halves of the chunk-id
    range, one per thread (105k chunks on 2 cores: p50 9.2 ms whole, 6.5 ms in halves).
    Hybrid mode does not slice: with the embedding on the other core, a third thread only
    made the two fight (measured no faster with any share from 50% to 100%).
    """

    def __init__(
        self,
        index: SearchableIndex,
        terms: list[str],
        viewer: Viewer,
        filters: dict[str, Any],
        limit: int,
        beside: bool,
    ) -> None:
        self._run = functools.partial(index.lexical, terms, viewer, filters, limit)
        self._limit = limit
        self._pending: Future[list[tuple[int, float]]] | None = None
        self._upper: RowRange | None = None
        self._done: list[tuple[int, float]] = []
        if not terms:
            return
        halves = [] if beside else index.lexical_halves()
        if halves:
            self._pending = _lexical_pool().submit(self._run, halves[0])
            self._upper = halves[1]
        elif beside:
            self._pending = _lexical_pool().submit(self._run)
        else:
            self._done = self._run()

    @property
    def beside_dense(self) -> bool:
        """Whether a worker thread runs BM25 while the dense half runs in this one."""
        return self._pending is not None and self._upper is None

    def result(self) -> list[tuple[int, float]]:
        if self._pending is None:
            return self._done
        if self._upper is None:
            return self._pending.result()
        upper = self._run(self._upper)
        merged = sorted(self._pending.result() + upper, key=lambda pair: -pair[1])
        return merged[: self._limit]


@functools.cache
def _lexical_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="bounded-bm25")


def _fuse(*lists: list[tuple[int, float]]) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranked in lists:
        for rank, (cid, _) in enumerate(ranked, 1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def _mmr(
    ranked: list[tuple[int, float]],
    index: SearchableIndex,
    query: Matrix,
    lam: float,
    k: int,
) -> list[tuple[int, float]]:
    """Maximal marginal relevance over the fused candidates: relevance is the cosine to the
    query, redundancy the highest cosine to a chunk already picked (both floored at 0)."""
    found, vectors = index.vectors_of([cid for cid, _ in ranked])
    if not found:
        return ranked
    have = set(found)
    present = [pair for pair in ranked if pair[0] in have]
    order = {cid: i for i, cid in enumerate(found)}
    vectors = vectors[[order[cid] for cid, _ in present]]
    relevance = np.clip(vectors @ query, 0.0, None)
    similarity = np.clip(vectors @ vectors.T, 0.0, None)
    chosen: list[int] = []
    left = list(range(len(present)))
    while left and len(chosen) < k:
        if chosen:
            redundancy = similarity[np.ix_(left, chosen)].max(axis=1)
        else:
            redundancy = np.zeros(len(left), dtype=np.float32)
        value = lam * relevance[left] - (1 - lam) * redundancy
        pick = left[int(np.argmax(value))]
        chosen.append(pick)
        left.remove(pick)
    return [present[i] for i in chosen]
