"""Hybrid search: BM25 (FTS5) and exact dense vectors, fused by reciprocal rank fusion.

    hits = search(index, embedder, "how do I rotate a key", viewer=Viewer.of("ops"), top_k=5)

- BM25 asks FTS5 for any of the query's words (stop words dropped): FTS5's default AND
  would miss a relevant passage for want of one word.
- Dense scores every visible chunk (exact, no approximate index) and keeps the best.
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
from bounded.retrieval.store import SqliteIndex
from bounded.retrieval.store_read import ChunkRecord
from bounded.retrieval.vectors import VectorSnapshot

Mode = Literal["bm25", "dense", "hybrid"]
RRF_K = 60
CANDIDATES = 100
# On big indexes a word in more than 5% of chunks costs FTS5 a long posting list for little
# ranking signal; it is left out of the BM25 query (the dense side still sees it).
PRUNE_MIN_CHUNKS = 20_000
PRUNE_FRACTION = 0.05
KEEP_RAREST = 3
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


def match_expression(index: SqliteIndex, query: str) -> str | None:
    terms = query_terms(query)
    if not terms:
        return None
    terms = _prune(index, terms)
    # Each word quoted: FTS5 syntax in the user's text (NEAR, *, :, ^) stays plain text.
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def _prune(index: SqliteIndex, terms: list[str]) -> list[str]:
    if len(terms) <= KEEP_RAREST:
        return terms
    from bounded.retrieval.stemming import porter

    stems = {t: porter(t) for t in terms}
    total, found = index.term_documents(sorted(set(stems.values())))
    if total < PRUNE_MIN_CHUNKS:
        return terms
    by_rarity = sorted(terms, key=lambda t: found.get(stems[t], 0))
    limit = total * PRUNE_FRACTION
    kept = [t for t in by_rarity if found.get(stems[t], 0) <= limit]
    return kept if len(kept) >= KEEP_RAREST else by_rarity[:KEEP_RAREST]


def search(
    index: SqliteIndex,
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
    lexical: list[tuple[int, float]] = []
    dense: list[tuple[int, float]] = []
    snapshot: VectorSnapshot | None = None
    # In hybrid mode FTS5 runs in a worker thread while this one embeds the query and scans
    # the vectors: SQLite, onnxruntime and numpy all release the GIL, so the two overlap.
    pending: Future[list[tuple[int, float]]] | None = None
    if mode in ("bm25", "hybrid"):
        match = match_expression(index, query)
        if match is not None and mode == "hybrid":
            pending = _lexical_pool().submit(index.bm25, match, viewer, filters, pool)
        elif match is not None:
            lexical = index.bm25(match, viewer, filters, pool)
    vector: Matrix | None = None
    if embedder is not None and query.strip() and (mode != "bm25" or mmr_lambda is not None):
        vector = embedder.embed([query])[0]
    if mode in ("dense", "hybrid") and vector is not None:
        dense, snapshot = index.dense(vector, viewer, filters, pool, one_core=pending is not None)
    if pending is not None:
        lexical = pending.result()
    fused = _fuse(lexical, dense) if mode == "hybrid" else lexical or dense
    ranks_b = {cid: r for r, (cid, _) in enumerate(lexical, 1)}
    ranks_d = {cid: r for r, (cid, _) in enumerate(dense, 1)}
    if mmr_lambda is not None and len(fused) > top_k:
        snapshot = snapshot or index.vector_snapshot()
        fused = _mmr(fused[: max(top_k * 4, 20)], snapshot, vector, mmr_lambda, top_k)
    chosen = fused[:top_k]
    records = index.chunk_records([cid for cid, _ in chosen])
    return [
        Hit(records[cid], score, ranks_b.get(cid), ranks_d.get(cid))
        for cid, score in chosen
        if cid in records
    ]


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
    snapshot: VectorSnapshot,
    query: Matrix | None,
    lam: float,
    k: int,
) -> list[tuple[int, float]]:
    """Maximal marginal relevance over the fused candidates: relevance is the cosine to the
    query, redundancy the highest cosine to a chunk already picked (both floored at 0)."""
    wanted = np.asarray([cid for cid, _ in ranked], dtype=np.int64)
    where = np.minimum(np.searchsorted(snapshot.ids, wanted), max(len(snapshot.ids) - 1, 0))
    found = snapshot.ids[where] == wanted if len(snapshot.ids) else np.zeros(len(wanted), bool)
    present = [pair for pair, ok in zip(ranked, found, strict=True) if ok]
    if not present or query is None:
        return ranked
    vectors = snapshot.rows([cid for cid, _ in present])
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
