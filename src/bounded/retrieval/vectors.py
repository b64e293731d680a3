"""The vectors of a collection as one float32 matrix in memory, searched exactly with numpy.

At 100k chunks x 384 dimensions the matrix is 154 MB and one query is a 2-3 ms
matrix-vector product (float16 or int8 would halve or quarter the memory but numpy has no
fast kernel for either: 40x slower, measured). The matrix follows the index by
``meta.generation``: new rows are appended (chunk ids only grow), and deletions, detected
by a row count that no longer adds up, re-read the id list and drop the missing rows.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bounded.retrieval.embedding import Matrix

Ids = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class VectorSnapshot:
    ids: Ids  # chunk ids, ascending
    docs: Ids  # the document row of each chunk
    matrix: Matrix
    generation: int

    def top(
        self,
        query: Matrix,
        limit: int,
        mask: npt.NDArray[np.bool_] | None,
        one_core: bool = False,
    ) -> list[tuple[int, float]]:
        """Best ``limit`` rows by dot product. ``one_core``: while FTS5 works on the other
        core, BLAS's multi-threaded product only fights it (hybrid at 100k chunks: p50 16.5
        to 12.3 ms on 2 cores); einsum runs the same product on this thread alone."""
        if not len(self.ids):
            return []
        scores = np.einsum("ij,j->i", self.matrix, query) if one_core else self.matrix @ query
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        limit = min(limit, len(scores))
        best = np.argpartition(-scores, limit - 1)[:limit]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in best if np.isfinite(scores[i])]

    def rows(self, chunk_ids: list[int]) -> Matrix:
        positions = np.searchsorted(self.ids, np.asarray(chunk_ids, dtype=np.int64))
        return self.matrix[positions]


def _empty(dimensions: int) -> VectorSnapshot:
    return VectorSnapshot(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, dimensions), np.float32), -1
    )


class VectorCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: VectorSnapshot | None = None

    def snapshot(self, conn: sqlite3.Connection, generation: int) -> VectorSnapshot:
        """The matrix as of ``generation``; ``conn`` must be inside a read transaction
        that read that generation, so rows and generation agree."""
        current = self._snapshot
        if current is not None and current.generation == generation:
            return current
        with self._lock:
            current = self._snapshot
            if current is None or current.generation != generation:
                current = self._refresh(conn, current, generation)
                self._snapshot = current
            return current

    def _refresh(
        self, conn: sqlite3.Connection, old: VectorSnapshot | None, generation: int
    ) -> VectorSnapshot:
        if old is None:
            old = _empty(0)
        last = int(old.ids[-1]) if len(old.ids) else 0
        rows = conn.execute(
            "SELECT chunk, doc, vector FROM vectors WHERE chunk > ? ORDER BY chunk", (last,)
        ).fetchall()
        total = conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        ids, docs, matrix = old.ids, old.docs, old.matrix
        if total != len(ids) + len(rows):
            present = np.fromiter(
                (r[0] for r in conn.execute("SELECT chunk FROM vectors")), dtype=np.int64
            )
            keep = np.isin(ids, present)
            ids, docs, matrix = ids[keep], docs[keep], matrix[keep]
        if rows:
            new = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
            new = new.reshape(len(rows), -1)
            matrix = new.copy() if matrix.shape[0] == 0 else np.concatenate([matrix, new])
            ids = np.concatenate([ids, np.fromiter((r[0] for r in rows), np.int64, len(rows))])
            docs = np.concatenate([docs, np.fromiter((r[1] for r in rows), np.int64, len(rows))])
        return VectorSnapshot(ids, docs, matrix, generation)
