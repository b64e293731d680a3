"""The scale-out index (PostgreSQL full text + pgvector HNSW) against the embedded one, on
SciFact, through the same sync and search code, in one run.

    .venv/bin/python bench/retrieval_pgvector.py \\
        --corpus ../shared/data/scifact/corpus.jsonl \\
        --queries ../shared/data/scifact/queries.jsonl \\
        --qrels ../shared/data/scifact/qrels/train.tsv \\
        [--store postgresql://...]   # default: a private PostgreSQL 16 + pgvector (pgserver)
        [--synthetic]                # also time queries at 100k synthetic chunks

Run ``bench/retrieval_scifact.py`` first with the same ``--workdir``: its SQLite collection is
the embedded side here, and its vectors are reused for the PostgreSQL sync (embedding the
corpus again would add ten minutes and change nothing: the same model, the same texts). The
PostgreSQL ingest time is therefore writes, full-text parsing and HNSW inserts only.

Both engines answer the held-out half of the queries (the same split as
retrieval_scifact.py) in bm25, dense and hybrid mode; the table shows nDCG@10, recall@100
and latency side by side. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import retrieval_scifact as scifact
from bounded.retrieval.access import Viewer
from bounded.retrieval.documents import HEADING_SEPARATOR, Chunk
from bounded.retrieval.embedding import LocalMiniLM, Matrix
from bounded.retrieval.service import RetrievalService, collection_url
from bounded.store.urls import sqlite_path


class ReusedVectors:
    """The packaged model, answering texts the embedded index already embedded from there."""

    name = "all-minilm-l6-v2"
    dimensions = 384

    def __init__(self, sqlite_file: Path) -> None:
        self.model = LocalMiniLM()
        self.known: dict[str, Matrix] = {}
        self.texts_embedded = 0
        self.calls = 0
        conn = sqlite3.connect(sqlite_file)
        rows = conn.execute(
            "SELECT d.title, c.position, c.heading, c.text, c.tokens, v.vector FROM chunks c "
            "JOIN documents d ON d.id = c.doc JOIN vectors v ON v.chunk = c.id"
        )
        for title, position, heading, text, tokens, blob in rows:
            headings = tuple(h for h in heading.split(HEADING_SEPARATOR) if h)
            chunk = Chunk(position, headings, text, tokens)
            self.known[chunk.embedding_text(title)] = np.frombuffer(blob, dtype=np.float32)
        conn.close()

    def embed(self, texts: list[str]) -> Matrix:
        """Known chunk texts from the table, anything else (every query) by the model, and
        nothing new remembered: query latencies include a real embedding each time."""
        missing = [t for t in texts if t not in self.known]
        fresh = dict(zip(missing, self.model.embed(missing), strict=True)) if missing else {}
        self.texts_embedded += len(missing)
        self.calls += 1
        return np.stack([self.known[t] if t in self.known else fresh[t] for t in texts])


def pg_service(url: str, folder: Path, embedder: Any, name: str = "scifact") -> RetrievalService:
    return scifact.service_for(folder.parent, name, folder, embedder, store=url)


def synthetic(url: str, workdir: Path, queries: list[str]) -> dict[str, Any]:
    folder = workdir / "synthetic"
    if not any(folder.glob("synthetic-*.jsonl")):
        sys.exit(f"no synthetic corpus in {folder}: run bench/retrieval_scifact.py first")
    loader = pg_service(url, folder, scifact.RandomUnitVectors(), "synthetic")
    report, ingest = scifact.timed(lambda: loader.sync("synthetic"))
    loader.close()
    scifact.log(f"PostgreSQL synthetic: {report.chunks_written} chunks in {ingest:.1f} s")
    service = pg_service(url, folder, LocalMiniLM(), "synthetic")
    figures: dict[str, Any] = {"ingest_s": round(ingest, 1)}
    figures["chunks"] = service.status("synthetic")["chunks"]
    everyone = Viewer.everything()
    for mode in scifact.MODES:
        scifact.query_latencies(service, "synthetic", queries, mode, everyone)  # warm-up
        times = scifact.query_latencies(service, "synthetic", queries, mode, everyone)
        figures[mode] = scifact.percentiles(times)
    service.close()
    return figures


def start_pgserver() -> tuple[str, Any, Path]:
    root = Path(tempfile.mkdtemp(prefix="bounded-bench-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(root, cleanup_mode="stop")
    return server.get_uri(), server, root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--qrels", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/retrieval"))
    parser.add_argument("--store", help="postgresql:// URL with pgvector; default: pgserver")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="also load retrieval_scifact.py's synthetic 100k-chunk corpus (random vectors) "
        "and time queries on it",
    )
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    folder = workdir / "corpus"
    embedded = scifact.service_for(workdir, "scifact", folder, LocalMiniLM())
    sqlite_file = sqlite_path(collection_url(embedded.config, "scifact"))
    if not sqlite_file.exists() or not embedded.status("scifact")["chunks"]:
        sys.exit(f"no embedded index at {sqlite_file}: run bench/retrieval_scifact.py first")

    server, root = None, None
    url = args.store
    if url is None:
        url, server, root = start_pgserver()
    try:
        vectors = ReusedVectors(sqlite_file)
        scaled = pg_service(url, folder, vectors)
        report, ingest = scifact.timed(lambda: scaled.sync("scifact"))
        again, resync = scifact.timed(lambda: scaled.sync("scifact"))
        assert again.texts_embedded == 0
        scifact.log(
            f"PostgreSQL sync: {report.chunks_written} chunks in {ingest:.1f} s "
            f"({vectors.texts_embedded} texts embedded anew)"
        )
        queries = scifact.load_queries(args.queries)
        qrels = scifact.load_qrels(args.qrels)
        held = {q: t for q, t in queries.items() if q in qrels and scifact.split_of(q) == "heldout"}
        # One untimed pass each first: PostgreSQL's first reads of freshly written rows set
        # hint bits and its autovacuum analyses the new tables, once; not a query's cost.
        for service in (embedded, scaled):
            scifact.evaluate(service, "scifact", held, qrels)
        results = {
            "sqlite": scifact.evaluate(embedded, "scifact", held, qrels),
            "postgres": scifact.evaluate(scaled, "scifact", held, qrels),
        }
        status = scaled.status("scifact")
        scaled.close()
        embedded.close()
        large = synthetic(url, workdir, list(held.values())) if args.synthetic else None
    finally:
        if server is not None:
            server.cleanup()
            shutil.rmtree(root or "", ignore_errors=True)

    print(f"held-out: {len(held)} queries; {status['chunks']} chunks in each engine")
    print(
        f"PostgreSQL first sync (vectors reused): {ingest:.1f} s; unchanged re-sync "
        f"{resync * 1000:.1f} ms"
    )
    print(f"  {'engine':9} {'mode':7} {'nDCG@10':>8} {'R@100':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for engine, by_mode in results.items():
        for mode, f in by_mode.items():
            print(
                f"  {engine:9} {mode:7} {f['ndcg10']:8.4f} {f['recall100']:7.4f} "
                f"{f['p50_ms']:7.2f} {f['p99_ms']:7.2f}"
            )
    figures: dict[str, Any] = {"queries": len(held), "chunks": status["chunks"]}
    for engine, by_mode in results.items():
        for mode, f in by_mode.items():
            for metric in ("ndcg10", "recall100", "p50_ms", "p99_ms"):
                figures[f"{engine}_{mode}_{metric}"] = round(f[metric], 4)
    figures["postgres_ingest_s"] = round(ingest, 1)
    figures["postgres_resync_s"] = round(resync, 4)
    if large:
        print(f"PostgreSQL at {large['chunks']} synthetic chunks (sync {large['ingest_s']} s):")
        for mode in scifact.MODES:
            f = large[mode]
            print(f"  {mode:7} p50 {f['p50_ms']:6.2f} ms   p99 {f['p99_ms']:6.2f} ms")
            figures[f"postgres_100k_{mode}_p50_ms"] = round(f["p50_ms"], 2)
            figures[f"postgres_100k_{mode}_p99_ms"] = round(f["p99_ms"], 2)
        figures["postgres_100k_ingest_s"] = large["ingest_s"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
