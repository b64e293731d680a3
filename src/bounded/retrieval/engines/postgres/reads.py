"""Reads of the PostgreSQL index, and its connections (one per thread).

Every ranking statement carries the viewer's access condition and the filters in its WHERE
clause; see :mod:`bounded.retrieval.engines.postgres.sql`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np

from bounded.errors import StoreUnavailable
from bounded.retrieval.access import Viewer
from bounded.retrieval.documents import HEADING_SEPARATOR
from bounded.retrieval.embedding import Matrix
from bounded.retrieval.engines.index import (
    ALL_ROWS,
    ChunkRecord,
    Filters,
    ItemState,
    Ranked,
    RowRange,
)
from bounded.retrieval.engines.postgres.sql import (
    EF_SEARCH_MIN,
    access_condition,
    bm25_sql,
    filter_condition,
    redacted,
    schema_for,
)
from bounded.store.urls import psycopg_url

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="PgReads")


def guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """A connection lost mid-statement (server restarted, network cut) is a 503 that says
    so, not a 500; the thread's broken connection is replaced on its next use."""

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except self._psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"collection index at {redacted(self.url)} failed: {str(exc).strip()}"
            ) from exc

    return wrapper


def _array(value: Any) -> Matrix:
    """pgvector returns numpy arrays or, for binary results in newer versions, Vectors."""
    value = value.to_numpy() if hasattr(value, "to_numpy") else value
    return np.asarray(value, dtype=np.float32)


class PgReads:
    def __init__(self, url: str, collection: str, dimensions: int | None):
        try:
            import psycopg
        except ImportError as exc:
            raise StoreUnavailable(
                f"collection {collection!r} uses PostgreSQL: install bounded[postgres]"
            ) from exc
        self.url = url
        self.schema = schema_for(collection)
        self._dimensions = dimensions
        self._psycopg = psycopg
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        self._iterative_scan: bool | None = None

    def _connect(self) -> Any:
        conn = self._psycopg.connect(psycopg_url(self.url), autocommit=True)
        try:
            if self._dimensions:
                from pgvector.psycopg import register_vector

                register_vector(conn)  # vectors travel as binary, read back as numpy
        except BaseException:
            conn.close()
            raise
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> Any:
        """One connection per thread: searches run on the lexical pool and the caller.
        A broken one (server restarted) is replaced on the next call."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = self._connect()
            except self._psycopg.OperationalError as exc:
                raise StoreUnavailable(
                    f"collection index at {redacted(self.url)} unreachable: {str(exc).strip()}"
                ) from exc
            self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    @guarded
    def items(self) -> dict[str, ItemState]:
        rows = self._conn().execute(
            "SELECT uri, source, signature, content_hash, synced_at, error, error_since "
            f"FROM {self.schema}.items"
        )
        return {r[0]: ItemState(*r) for r in rows.fetchall()}

    @guarded
    def document_hashes(self, item: str) -> dict[str, str]:
        rows = self._conn().execute(
            f"SELECT doc_id, content_hash FROM {self.schema}.documents WHERE item = %s", (item,)
        )
        return {r[0]: r[1] for r in rows.fetchall()}

    @guarded
    def get_meta(self, key: str) -> str | None:
        row = (
            self._conn()
            .execute(f"SELECT value FROM {self.schema}.meta WHERE key = %s", (key,))
            .fetchone()
        )
        return str(row[0]) if row else None

    @guarded
    def lexical(
        self,
        terms: list[str],
        viewer: Viewer,
        filters: Filters,
        limit: int,
        rows: RowRange = ALL_ROWS,
    ) -> Ranked:
        if rows != ALL_ROWS:
            raise ValueError("the PostgreSQL engine answers a lexical query whole")
        if not terms:
            return []
        access, a_params = access_condition(viewer)
        where, f_params = filter_condition(filters)
        params = [" ".join(terms), *a_params, *f_params, limit]
        found = self._conn().execute(bm25_sql(self.schema, access, where), params).fetchall()
        return [(int(r[0]), float(r[1])) for r in found]

    def lexical_halves(self) -> list[RowRange]:
        return []  # halving was measured to pay on the embedded engine only

    @guarded
    def dense(
        self, query: Matrix, viewer: Viewer, filters: Filters, limit: int, one_core: bool = False
    ) -> Ranked:
        if not self._dimensions:
            return []
        access, a_params = access_condition(viewer)
        where, f_params = filter_condition(filters)
        vector = np.asarray(query, dtype=np.float32)
        conn = self._conn()
        with conn.transaction():
            # The HNSW scan yields at most ef_search rows (40 by default): fewer than the
            # candidates fusion wants, and fewer still once access filters some out.
            ef = max(EF_SEARCH_MIN, limit * 2)
            conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            if self._has_iterative_scan(conn):
                # pgvector 0.8+: when filters reject rows, keep walking the graph until
                # `limit` allowed rows are found, instead of returning fewer.
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = conn.execute(
                f"SELECT c.id, 1 - (c.embedding <=> %s) FROM {self.schema}.chunks c "
                f"WHERE c.embedding IS NOT NULL{access}{where} "
                "ORDER BY c.embedding <=> %s LIMIT %s",
                [vector, *a_params, *f_params, vector, limit],
            ).fetchall()
        # relaxed_order may return rows slightly out of order: put them back in order.
        return sorted(((int(r[0]), float(r[1])) for r in rows), key=lambda pair: -pair[1])

    def _has_iterative_scan(self, conn: Any) -> bool:
        if self._iterative_scan is None:
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
            major_minor = tuple(int(x) for x in str(row[0]).split(".")[:2]) if row else (0, 0)
            self._iterative_scan = major_minor >= (0, 8)
        return self._iterative_scan

    @guarded
    def vectors_of(self, chunk_ids: list[int]) -> tuple[list[int], Matrix]:
        if not self._dimensions or not chunk_ids:
            return [], np.zeros((0, self._dimensions or 0), np.float32)
        rows = (
            self._conn()
            .execute(
                f"SELECT id, embedding FROM {self.schema}.chunks "
                "WHERE id = ANY(%s) AND embedding IS NOT NULL",
                (chunk_ids,),
            )
            .fetchall()
        )
        if not rows:
            return [], np.zeros((0, self._dimensions), np.float32)
        return [int(r[0]) for r in rows], np.stack([_array(r[1]) for r in rows])

    @guarded
    def chunk_records(self, ids: list[int]) -> dict[int, ChunkRecord]:
        if not ids:
            return {}
        rows = (
            self._conn()
            .execute(
                "SELECT c.id, d.doc_id, d.item, d.title, c.heading, c.position, c.text, c.tokens, "
                f"d.metadata, d.labels FROM {self.schema}.chunks c "
                f"JOIN {self.schema}.documents d ON d.id = c.doc WHERE c.id = ANY(%s)",
                (ids,),
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
                r[8],
                tuple(r[9]),
            )
            for r in rows
        }

    @guarded
    def stats(self) -> dict[str, Any]:
        conn, s = self._conn(), self.schema
        documents = conn.execute(f"SELECT count(*) FROM {s}.documents").fetchone()[0]
        chunks = conn.execute(f"SELECT count(*) FROM {s}.chunks").fetchone()[0]
        errors = [
            {"uri": r[0], "error": r[1], "since": r[2]}
            for r in conn.execute(
                f"SELECT uri, error, error_since FROM {s}.items WHERE error IS NOT NULL "
                "ORDER BY uri"
            ).fetchall()
        ]
        meta = dict(conn.execute(f"SELECT key, value FROM {s}.meta").fetchall())
        return {"documents": documents, "chunks": chunks, "errors": errors, "meta": meta}
