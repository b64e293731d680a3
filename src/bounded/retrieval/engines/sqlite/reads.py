"""Reads of the embedded index: BM25 through FTS5, the vector snapshot, chunk records, status.

Access labels and metadata filters are part of each statement's WHERE clause (and of the
vector mask), never applied to a finished top-k.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from bounded.retrieval.access import Viewer, acl_match
from bounded.retrieval.documents import HEADING_SEPARATOR
from bounded.retrieval.engines.index import ALL_ROWS, ChunkRecord, Filters, Ranked, RowRange
from bounded.retrieval.engines.sqlite.stemming import porter
from bounded.retrieval.engines.sqlite.vectors import VectorCache, VectorSnapshot
from bounded.store.urls import sqlite_path

# Title, heading path, text: a word in the title says more than one deep in the text.
# Chosen on the SciFact dev half (title x2: nDCG@10 +0.003 BM25, +0.007 hybrid; x3 and x0.5
# were worse); the held-out half was not looked at.
BM25_WEIGHTS = (2.0, 1.0, 1.0, 0.0)  # the acl column never adds to a score
_MASKS = 64
_TERM_COUNTS = 50_000  # document counts of query words, kept until the index changes
# On big indexes a word in more than 4% of chunks costs FTS5 a long posting list for little
# ranking signal; it is left out of the BM25 query (the dense side still sees it). Chosen on
# the SciFact dev half with pruning forced on: hybrid nDCG@10 0.7095 at 5%, 0.7102 at 4%,
# 0.7065 at 3.5%, 0.6977 at 3% (0.7139 unpruned); 4% makes FTS5 ~20% faster than 5% at 105k.
PRUNE_MIN_CHUNKS = 20_000
PRUNE_FRACTION = 0.04
KEEP_RAREST = 3
# On big indexes a BM25-only query runs as two FTS5 queries, one per half of the chunk-id
# range, on two cores at once (search.py): bm25() takes its statistics (document counts,
# average length) from the whole index, so a row scores the same in a half as in the whole
# query. Each half costs ~0.5 ms plus its share of ~8 ms (SciFact queries at 105k chunks).
SPLIT_MIN_CHUNKS = 20_000
_CORES = os.cpu_count() or 1


def access_sql(viewer: Viewer) -> tuple[str, list[Any]]:
    if viewer.labels is None:
        return "", []
    if not viewer.labels:
        return " AND d.public = 1", []
    labels = sorted(viewer.labels)
    marks = ", ".join("?" * len(labels))
    return (
        f" AND (d.public = 1 OR d.id IN (SELECT doc FROM doc_labels WHERE label IN ({marks})))",
        labels,
    )


def filter_sql(filters: Filters) -> tuple[str, list[Any]]:
    sql, params = "", []
    for key, value in sorted(filters.items()):
        values = value if isinstance(value, list) else [value]
        if key == "doc_id":
            sql += f" AND d.doc_id IN ({', '.join('?' * len(values))})"
        else:
            # json_each compares the key as a value, so any key matches exactly. A JSON path
            # ('$."key"') cannot spell a key holding '"', and control characters break it.
            sql += (
                " AND EXISTS (SELECT 1 FROM json_each(d.metadata) m WHERE m.key = ? "
                f"AND m.value IN ({', '.join('?' * len(values))}))"
            )
            params.append(key)
        params.extend(values)
    return sql, params


class IndexReads:
    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._vectors = VectorCache()
        # generation, chunk count, lowest and highest chunk id: once per index change.
        self._chunk_span: tuple[int, int, int, int] = (-1, 0, 0, 0)
        self._term_counts: dict[str, int] = {}
        self._masks: OrderedDict[tuple[Any, ...], npt.NDArray[np.bool_]] = OrderedDict()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                sqlite_path(self.url), check_same_thread=False, isolation_level=None, timeout=10
            )
            conn.execute("PRAGMA query_only = 1")
            conn.execute("PRAGMA busy_timeout = 10000")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def close_readers(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    @contextmanager
    def _snapshot_read(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            generation = int(
                conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
            )
            yield conn, generation
        finally:
            conn.execute("COMMIT")

    def get_meta(self, key: str) -> str | None:
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def generation(self) -> int:
        with self._snapshot_read() as (_, generation):
            return generation

    def _chunks(self) -> tuple[int, int, int]:
        """Chunk count, lowest and highest chunk id (count(*) walks an index: ms at 100k
        rows, so it is read once per index change)."""
        generation = self.generation()
        if self._chunk_span[0] != generation:
            row = self._reader().execute("SELECT count(*), min(id), max(id) FROM chunks")
            total, low, high = row.fetchone()
            self._chunk_span = (generation, total, low or 0, high or 0)
            self._term_counts = {}  # counts of the old generation may be wrong now
        return self._chunk_span[1:]

    def term_documents(self, terms: list[str]) -> tuple[int, dict[str, int]]:
        """Chunk count and, per term (as FTS5 stored it), the chunks that contain it."""
        conn = self._reader()
        total = self._chunks()[0]
        counts = self._term_counts
        found = {}
        for term in terms:
            if term not in counts:
                if len(counts) >= _TERM_COUNTS:
                    counts.clear()
                row = conn.execute("SELECT doc FROM fts_terms WHERE term = ?", (term,)).fetchone()
                counts[term] = row[0] if row else 0
            found[term] = counts[term]
        return total, found

    def lexical(
        self,
        terms: list[str],
        viewer: Viewer,
        filters: Filters,
        limit: int,
        rows: RowRange = ALL_ROWS,
    ) -> Ranked:
        if not terms:
            return []
        terms = self._prune(terms)
        # Each word quoted: FTS5 syntax in the user's text (NEAR, *, :, ^) stays plain text.
        return self.bm25(
            " OR ".join('"' + t.replace('"', '""') + '"' for t in terms),
            viewer,
            filters,
            limit,
            rows,
        )

    def lexical_halves(self) -> list[RowRange]:
        total, low, high = self._chunks()
        if _CORES < 2 or total < SPLIT_MIN_CHUNKS:
            return []
        middle = (low + high + 1) // 2  # chunk ids are dense enough for ids to split work
        return [(None, middle), (middle, None)]

    def _prune(self, terms: list[str]) -> list[str]:
        if len(terms) <= KEEP_RAREST:
            return terms
        stems = {t: porter(t) for t in terms}
        total, found = self.term_documents(sorted(set(stems.values())))
        if total < PRUNE_MIN_CHUNKS:
            return terms
        by_rarity = sorted(terms, key=lambda t: found.get(stems[t], 0))
        cap = total * PRUNE_FRACTION
        kept = [t for t in by_rarity if found.get(stems[t], 0) <= cap]
        return kept if len(kept) >= KEEP_RAREST else by_rarity[:KEEP_RAREST]

    def bm25(
        self, match: str, viewer: Viewer, filters: Filters, limit: int, rows: RowRange = ALL_ROWS
    ) -> Ranked:
        # The words may only match the text columns; access is one more FTS5 term, so the
        # engine itself never yields a forbidden row (faster than a join, too).
        expression = "{title heading text} : (" + match + ")"
        acl = acl_match(viewer)
        if acl is not None:
            expression += " AND " + acl
        where, more = filter_sql(filters)
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        join = " JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.doc"
        # FTS5 seeks its posting lists to a rowid range instead of reading them whole.
        span = ""
        if rows[0] is not None:
            span += " AND f.rowid >= ?"
            more.append(rows[0])
        if rows[1] is not None:
            span += " AND f.rowid < ?"
            more.append(rows[1])
        sql = (
            f"SELECT f.rowid, bm25(chunks_fts, {weights}) AS score FROM chunks_fts f"
            f"{join if where else ''} WHERE chunks_fts MATCH ?{where}{span}"
            " ORDER BY score LIMIT ?"
        )
        found = self._reader().execute(sql, [expression, *more, limit]).fetchall()
        # FTS5's bm25() is negative (lower is better); flip it so higher is better everywhere.
        return [(int(r[0]), -float(r[1])) for r in found]

    def dense(
        self,
        query: npt.NDArray[np.float32],
        viewer: Viewer,
        filters: Filters,
        limit: int,
        one_core: bool = False,
    ) -> Ranked:
        with self._snapshot_read() as (conn, generation):
            snapshot = self._vectors.snapshot(conn, generation)
            mask = self._mask(conn, snapshot, viewer, filters)
        return snapshot.top(query, limit, mask, one_core)

    def vectors_of(self, chunk_ids: list[int]) -> tuple[list[int], npt.NDArray[np.float32]]:
        with self._snapshot_read() as (conn, generation):
            snapshot = self._vectors.snapshot(conn, generation)
        return snapshot.rows(chunk_ids)

    def _mask(
        self, conn: sqlite3.Connection, snapshot: VectorSnapshot, viewer: Viewer, filters: Filters
    ) -> npt.NDArray[np.bool_] | None:
        if viewer.labels is None and not filters:
            return None
        key = (
            snapshot.generation,
            viewer.labels,
            orjson.dumps(filters, option=orjson.OPT_SORT_KEYS),
        )
        mask = self._masks.get(key)
        if mask is None:
            access, params = access_sql(viewer)
            where, more = filter_sql(filters)
            allowed = np.fromiter(
                (
                    r[0]
                    for r in conn.execute(
                        f"SELECT d.id FROM documents d WHERE 1{access}{where}", [*params, *more]
                    )
                ),
                dtype=np.int64,
            )
            mask = np.isin(snapshot.docs, allowed)
            self._masks[key] = mask
            while len(self._masks) > _MASKS:
                self._masks.popitem(last=False)
        return mask

    def chunk_records(self, ids: list[int]) -> dict[int, ChunkRecord]:
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        rows = (
            self._reader()
            .execute(
                "SELECT c.id, d.doc_id, d.item, d.title, c.heading, c.position, c.text, c.tokens, "
                f"d.metadata, d.labels FROM chunks c JOIN documents d ON d.id = c.doc "
                f"WHERE c.id IN ({marks})",
                ids,
            )
            .fetchall()
        )
        return {
            r[0]: ChunkRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                tuple(h for h in r[4].split(HEADING_SEPARATOR) if h),
                r[5],
                r[6],
                r[7],
                orjson.loads(r[8]),
                tuple(orjson.loads(r[9])),
            )
            for r in rows
        }

    def stats(self) -> dict[str, Any]:
        conn = self._reader()
        documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        errors = [
            {"uri": r[0], "error": r[1], "since": r[2]}
            for r in conn.execute(
                "SELECT uri, error, error_since FROM items WHERE error IS NOT NULL ORDER BY uri"
            )
        ]
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return {"documents": documents, "chunks": chunks, "errors": errors, "meta": meta}
