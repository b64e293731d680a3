"""Retrieval quality and speed on a BEIR dataset, through bounded's own ingestion and search.

    .venv/bin/python bench/retrieval_scifact.py \\
        --corpus ../shared/data/scifact/corpus.jsonl \\
        --queries ../shared/data/scifact/queries.jsonl \\
        --qrels ../shared/data/scifact/qrels/train.tsv

What it does:

1. Declares a collection whose folder holds the corpus (JSON Lines, ``_id``/``title``/``text``),
   syncs it with the real sync (parse, chunk, embed with the packaged MiniLM, write SQLite)
   and times it; then syncs again untouched (size and mtime equal: nothing read) and again
   after touching the file (read, hashed, parsed, per-document hashes compared: nothing
   embedded), and prints both ratios to the first sync.
2. Splits the queries by a hash of their id into a *dev* half (look at it, tune on it) and a
   *held-out* half (report it). Every query goes through ``RetrievalService.search`` in
   bm25, dense and hybrid mode; chunks are folded to documents (best chunk first) and scored
   with nDCG@10 and recall@100 against the judgements. Latency p50/p99 per mode.
3. Builds a synthetic collection of ``--synthetic-chunks`` chunks (sentences of the corpus
   recombined, so words are distributed like real text) through the same sync, with random
   unit vectors for the passages (embedding 100k passages on 2 cores would take an hour and
   an exact scan costs the same whatever the values), then measures query latency with the
   *real* model embedding each query: the embedded default at 100k chunks.

The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bounded.config.loader import parse_config
from bounded.retrieval.access import Viewer
from bounded.retrieval.embedding import LocalMiniLM, Matrix
from bounded.retrieval.engines.sqlite import reads as sqlite_reads
from bounded.retrieval.service import RetrievalService

MODES = ("bm25", "dense", "hybrid")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def service_for(
    workdir: Path, name: str, folder: Path, embedder: Any, store: str | None = None
) -> RetrievalService:
    """A service with one collection over ``folder``'s JSON Lines; ``store``: the collection's
    own database (PostgreSQL in bench/retrieval_pgvector.py), else the embedded default."""
    config = {
        "server": {"store": f"sqlite:///{workdir / 'state' / 'bounded.db'}"},
        "collections": {
            name: {
                **({"store": store} if store else {}),
                "sources": [
                    {
                        "kind": "folder",
                        "path": str(folder),
                        "include": ["*.jsonl"],
                        "max_bytes": 2**31,
                        "jsonl": {"id": "_id"},
                    }
                ],
                "refresh_interval_s": None,
            }
        },
    }
    return RetrievalService(
        parse_config(json.dumps(config), env={}), embedders={"all-minilm-l6-v2": embedder}
    )


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


# -- quality ------------------------------------------------------------------------------


def load_queries(path: Path) -> dict[str, str]:
    return {q["_id"]: q["text"] for q in map(json.loads, path.read_text().splitlines()) if q}


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines()[1:]:
        query, doc, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(query, {})[doc] = int(score)
    return qrels


def split_of(query_id: str) -> str:
    """Stable and blind to content: the first byte of a hash of the id decides."""
    return "dev" if hashlib.sha256(query_id.encode()).digest()[0] % 2 == 0 else "heldout"


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def documents(hits: list[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(hit.chunk.doc_id.rsplit("#", 1)[-1], None)
    return list(seen)


def evaluate(
    svc: RetrievalService, name: str, queries: dict[str, str], qrels: dict[str, dict[str, int]]
) -> dict[str, dict[str, float]]:
    everyone = Viewer.everything()
    figures: dict[str, dict[str, float]] = {}
    for mode in MODES:
        ndcgs, recalls, latencies = [], [], []
        for qid, text in queries.items():
            hits, took = timed(
                lambda text=text, mode=mode: svc.search(
                    name, text, viewer=everyone, top_k=150, mode=mode
                )
            )
            ranked = documents(hits)
            ndcgs.append(ndcg_at(ranked, qrels[qid]))
            recalls.append(recall_at(ranked, qrels[qid]))
            latencies.append(took * 1000)
        figures[mode] = {
            "ndcg10": statistics.fmean(ndcgs),
            "recall100": statistics.fmean(recalls),
            **percentiles(latencies),
        }
    return figures


def query_latencies(
    svc: RetrievalService, name: str, queries: list[str], mode: str, viewer: Viewer
) -> list[float]:
    out = []
    for query in queries:
        started = time.perf_counter()
        svc.search(name, query, viewer=viewer, top_k=10, mode=mode)  # type: ignore[arg-type]
        out.append((time.perf_counter() - started) * 1000)
    return out


def percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


# -- synthetic 100k -----------------------------------------------------------------------


class RandomUnitVectors:
    """Stand-in passage vectors for the latency corpus only; queries use the real model."""

    name = "all-minilm-l6-v2"
    dimensions = 384

    def __init__(self) -> None:
        self.texts_embedded = 0
        self.calls = 0
        self._rng = np.random.default_rng(0)

    def embed(self, texts: list[str]) -> Matrix:
        matrix = self._rng.standard_normal((len(texts), self.dimensions)).astype(np.float32)
        self.texts_embedded += len(texts)
        self.calls += 1
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def write_synthetic(corpus: Path, out: Path, chunks: int) -> None:
    sentences: list[str] = []
    for line in corpus.read_text().splitlines():
        sentences += re.split(r"(?<=[.!?])\s+", json.loads(line)["text"])
    rng = random.Random(0)
    with out.open("w") as handle:
        for i in range(chunks):
            # About 90 words: one chunk each at the default 200-token chunk size.
            text = " ".join(rng.sample(sentences, 4))
            labels = ["team-a"] if i % 2 else []
            handle.write(
                json.dumps({"_id": f"s{i}", "title": "", "text": text, "labels": labels}) + "\n"
            )


def synthetic_latency(
    args: argparse.Namespace, workdir: Path, queries: list[str], model: LocalMiniLM
) -> dict[str, Any]:
    folder = workdir / "synthetic"
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("synthetic-*.jsonl"):
        if stale.name != f"synthetic-{args.synthetic_chunks}.jsonl":
            stale.unlink()  # another size: the sync will drop its chunks
    data = folder / f"synthetic-{args.synthetic_chunks}.jsonl"
    if not data.exists():
        write_synthetic(args.corpus, data, args.synthetic_chunks)
    loader = service_for(workdir, "synthetic", folder, RandomUnitVectors())
    report, ingest = timed(lambda: loader.sync("synthetic"))
    loader.close()
    log(f"synthetic: {report.chunks_written} chunks written in {ingest:.1f} s")
    figures: dict[str, Any] = {"ingest_s": round(ingest, 1)}
    svc = service_for(workdir, "synthetic", folder, model)
    figures["chunks"] = svc.status("synthetic")["chunks"]
    svc.search("synthetic", "warm up the caches", viewer=Viewer.everything())  # the vectors
    svc.search("synthetic", "warm up", viewer=Viewer.of("team-b"))  # and a mask
    index = svc.index("synthetic")
    cases = [(m, Viewer.everything()) for m in MODES] + [("hybrid", Viewer.of("team-b"))]
    for mode, viewer in cases:
        # Each mode starts without the cached document counts of query words, as if its
        # queries were the first since the index last changed.
        getattr(index, "_term_counts", {}).clear()
        latencies = query_latencies(svc, "synthetic", queries, mode, viewer)
        key = mode if viewer.labels is None else f"{mode}_labelled"
        figures[key] = percentiles(latencies)
    svc.close()
    return figures


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--qrels", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/retrieval"))
    parser.add_argument("--fresh", action="store_true", help="delete the workdir first")
    parser.add_argument("--split", choices=("dev", "heldout", "both"), default="both")
    parser.add_argument("--synthetic-chunks", type=int, default=100_000)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-pruned", action="store_true")
    args = parser.parse_args()
    if args.fresh and args.workdir.exists():
        shutil.rmtree(args.workdir)
    workdir = args.workdir.resolve()
    folder = workdir / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.corpus, folder / "corpus.jsonl")

    model = LocalMiniLM()
    svc = service_for(workdir, "scifact", folder, model)
    first, ingest = timed(lambda: svc.sync("scifact"))
    status = svc.status("scifact")
    log(
        f"first sync: {first.documents_indexed} documents, {first.chunks_written} chunks, "
        f"{first.texts_embedded} embedded, {len(first.errors)} errors in {ingest:.1f} s"
    )
    again, resync = timed(lambda: svc.sync("scifact"))
    os.utime(folder / "corpus.jsonl")
    touched, rehash = timed(lambda: svc.sync("scifact"))
    assert again.texts_embedded == touched.texts_embedded == 0
    edit = edit_one_document(svc, folder / "corpus.jsonl")

    queries = load_queries(args.queries)
    qrels = load_qrels(args.qrels)
    judged = {q: t for q, t in queries.items() if q in qrels}
    halves = {s: {q: t for q, t in judged.items() if split_of(q) == s} for s in ("dev", "heldout")}
    wanted = ("dev", "heldout") if args.split == "both" else (args.split,)
    results = {s: evaluate(svc, "scifact", halves[s], qrels) for s in wanted}
    pruned = None
    if not args.skip_pruned:
        # The same queries with the 100k-chunk BM25 pruning forced on: its cost in quality.
        sqlite_reads.PRUNE_MIN_CHUNKS = 0
        pruned = (wanted[-1], evaluate(svc, "scifact", halves[wanted[-1]], qrels))
        sqlite_reads.PRUNE_MIN_CHUNKS = 20_000
    svc.close()
    synthetic = None
    if not args.skip_synthetic:
        synthetic = synthetic_latency(args, workdir, list(halves["heldout"].values()), model)

    syncs = {"first": first, "ingest": ingest, "resync": resync, "rehash": rehash, "edit": edit}
    report(status, syncs, halves, results, pruned, synthetic)


def edit_one_document(svc: RetrievalService, path: Path) -> dict[str, Any]:
    """Change one record of the corpus file, sync, then put it back and sync again."""
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    record = json.loads(lines[0])
    record["text"] += " This sentence was added by the benchmark."
    path.write_text(json.dumps(record) + "\n" + "".join(lines[1:]))
    edited, took = timed(lambda: svc.sync("scifact"))
    path.write_text(original)
    restored = svc.sync("scifact")
    assert edited.documents_indexed == restored.documents_indexed == 1, edited.as_json()
    return {"s": took, "embedded": edited.texts_embedded, "unchanged": edited.documents_unchanged}


def report(
    status: dict[str, Any],
    syncs: dict[str, Any],
    halves: dict[str, dict[str, str]],
    results: dict[str, dict[str, dict[str, float]]],
    pruned: tuple[str, dict[str, dict[str, float]]] | None,
    synthetic: dict[str, Any] | None,
) -> None:
    first, ingest, edit = syncs["first"], syncs["ingest"], syncs["edit"]
    resync, rehash = syncs["resync"], syncs["rehash"]
    print(
        f"corpus: {status['documents']} documents, {status['chunks']} chunks "
        f"({status['chunks'] / max(1, status['documents']):.2f} per document)"
    )
    print(f"first sync: {ingest:.1f} s ({first.texts_embedded / ingest:.1f} chunks/s embedded)")
    print(
        f"re-sync unchanged: {resync * 1000:.2f} ms, {ingest / resync:.0f}x faster than the "
        "first sync (size and mtime equal: nothing read)"
    )
    print(
        f"re-sync after touch: {rehash * 1000:.1f} ms, {ingest / rehash:.0f}x faster (mtime "
        "changed: read and hashed, same bytes, nothing parsed or embedded)"
    )
    print(
        f"re-sync after editing one record: {edit['s']:.2f} s, {ingest / edit['s']:.0f}x faster "
        f"(file parsed, {edit['unchanged']} documents unchanged by hash, "
        f"{edit['embedded']} chunk(s) embedded)"
    )
    for split, by_mode in results.items():
        print(f"\n{split} split: {len(halves[split])} queries")
        print(f"  {'mode':8} {'nDCG@10':>8} {'R@100':>7} {'p50 ms':>7} {'p99 ms':>7}")
        for mode, f in by_mode.items():
            print(
                f"  {mode:8} {f['ndcg10']:8.4f} {f['recall100']:7.4f} {f['p50_ms']:7.2f} "
                f"{f['p99_ms']:7.2f}"
            )
    if pruned:
        print(f"\n{pruned[0]} with the large-index BM25 pruning forced on (its cost in quality):")
        for mode in ("bm25", "hybrid"):
            f = pruned[1][mode]
            print(f"  {mode:8} nDCG@10 {f['ndcg10']:.4f}  R@100 {f['recall100']:.4f}")
    if synthetic:
        print(
            f"\nsynthetic: {synthetic['chunks']} chunks (ingest {synthetic['ingest_s']} s, random "
            "passage vectors), top-10, each query embedded by the real model:"
        )
        for key in ("bm25", "dense", "hybrid", "hybrid_labelled"):
            f = synthetic[key]
            print(f"  {key:16} p50 {f['p50_ms']:6.2f} ms   p99 {f['p99_ms']:6.2f} ms")
    split = "heldout" if "heldout" in results else next(iter(results))
    held = results[split]
    figures: dict[str, Any] = {
        f"{metric}_{mode}": round(held[mode][metric], 4)
        for mode in MODES
        for metric in ("ndcg10", "recall100")
    }
    figures |= {
        "split": split,
        "queries": len(halves[split]),
        "documents": status["documents"],
        "chunks": status["chunks"],
        "ingest_s": round(ingest, 1),
        "resync_s": round(resync, 5),
        "resync_speedup": round(ingest / resync),
        "rehash_s": round(rehash, 4),
        "rehash_speedup": round(ingest / rehash),
        "edit_one_s": round(edit["s"], 3),
        "edit_one_speedup": round(ingest / edit["s"]),
        "edit_one_embedded": edit["embedded"],
        "query_p50_ms": round(held["hybrid"]["p50_ms"], 2),
        "query_p99_ms": round(held["hybrid"]["p99_ms"], 2),
    }
    if "dev" in results:
        figures |= {f"dev_ndcg10_{m}": round(results["dev"][m]["ndcg10"], 4) for m in MODES}
    if pruned:
        figures |= {f"pruned_ndcg10_{m}": round(pruned[1][m]["ndcg10"], 4) for m in MODES}
    if synthetic:
        figures["chunks_100k"] = synthetic["chunks"]
        for key in ("bm25", "dense", "hybrid", "hybrid_labelled"):
            for p in ("p50_ms", "p99_ms"):
                figures[f"query_{p[:3]}_ms_100k_{key}"] = round(synthetic[key][p], 2)
        figures["query_p50_ms_100k"] = figures["query_p50_ms_100k_hybrid"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
