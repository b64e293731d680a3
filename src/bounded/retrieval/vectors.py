"""The vectors of a collection in memory as int8 codes, scored with onnxruntime.

Each float32 vector (already unit length) is stored in memory as 384 int8 codes and one
float32 scale (its largest magnitude / 127): a quarter of the memory of float32 (100k
chunks: 39 MB instead of 154 MB) and a quarter of the bytes to stream per query, which is
what an exact scan is bound by. numpy has no fast int8 product (measured 40x slower than
float32), so the product runs in onnxruntime's MLAS int8 kernel, through a one-node
``MatMulInteger`` model shipped in ``assets/`` (see ``scripts/make_int8_scores_model.py``).
At 105k chunks on this machine: 1.8 ms on one core against 4.0 ms for numpy float32 on two.
Ranking is unchanged in practice (SciFact dense nDCG@10: identical to 3 decimals; see
docs/retrieval.md); the float32 vectors stay in SQLite, untouched.

The codes are stored offset by 128 as uint8 (the u8 x s8 kernel is the fast one on x86):
``sum((c + 128) * q) = sum(c * q) + 128 * sum(q)``, so the offset is taken back exactly.

The snapshot follows the index by ``meta.generation``: new rows are appended (chunk ids
only grow), and deletions, detected by a row count that no longer adds up, re-read the id
list and drop the missing rows.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from bounded.retrieval.embedding import Matrix

Ids = npt.NDArray[np.int64]
Codes = npt.NDArray[np.uint8]
_OFFSET = 128


def quantize(vectors: Matrix) -> tuple[Codes, Matrix]:
    """Rows of float32 to (uint8 codes offset by 128, float32 scale per row)."""
    peak = np.abs(vectors).max(axis=1) if len(vectors) else np.zeros(0, np.float32)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.rint(vectors / scales[:, None]).astype(np.int16) + _OFFSET
    return codes.astype(np.uint8), scales


@functools.cache
def _session(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Spinning threads would burn the core that FTS5 or the next request needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = resources.files("bounded.retrieval").joinpath("assets/int8_scores.onnx").read_bytes()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True, slots=True)
class VectorSnapshot:
    ids: Ids  # chunk ids, ascending
    docs: Ids  # the document row of each chunk
    codes: Codes  # rows x dims, int8 + 128
    scales: Matrix  # one per row
    generation: int

    def scores(self, query: Matrix, one_core: bool = False) -> Matrix:
        """Approximate dot product of every row with ``query`` (error ~1e-3 on cosines).
        ``one_core``: while FTS5 works on the other core, a second thread only fights it."""
        peak = float(np.abs(query).max()) or 1.0
        q = np.rint(query * (127.0 / peak)).astype(np.int8).reshape(-1, 1)
        raw = _session(1 if one_core else 2).run(None, {"codes": self.codes, "query": q})[0]
        raw = raw.reshape(-1) - _OFFSET * int(q.astype(np.int32).sum())
        return raw.astype(np.float32) * self.scales * np.float32(peak / 127.0)

    def top(
        self,
        query: Matrix,
        limit: int,
        mask: npt.NDArray[np.bool_] | None,
        one_core: bool = False,
    ) -> list[tuple[int, float]]:
        """Best ``limit`` rows by dot product, rows outside ``mask`` never considered."""
        if not len(self.ids):
            return []
        scores = self.scores(query, one_core)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        limit = min(limit, len(scores))
        best = np.argpartition(-scores, limit - 1)[:limit]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in best if np.isfinite(scores[i])]

    def rows(self, chunk_ids: list[int]) -> tuple[list[int], Matrix]:
        """The chunk ids of ``chunk_ids`` that have a vector, and their (decoded) vectors."""
        wanted = np.asarray(chunk_ids, dtype=np.int64)
        if not len(self.ids) or not len(wanted):
            return [], np.zeros((0, self.codes.shape[1]), np.float32)
        where = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        found = self.ids[where] == wanted
        where = where[found]
        decoded = (self.codes[where].astype(np.float32) - _OFFSET) * self.scales[where, None]
        return [int(c) for c in wanted[found]], decoded


def _empty(dimensions: int) -> VectorSnapshot:
    none = np.zeros(0, np.int64)
    return VectorSnapshot(
        none, none, np.zeros((0, dimensions), np.uint8), np.zeros(0, np.float32), -1
    )


class VectorCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: VectorSnapshot | None = None

    def snapshot(self, conn: sqlite3.Connection, generation: int) -> VectorSnapshot:
        """The codes as of ``generation``; ``conn`` must be inside a read transaction
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
        ids, docs, codes, scales = old.ids, old.docs, old.codes, old.scales
        if total != len(ids) + len(rows):
            present = np.fromiter(
                (r[0] for r in conn.execute("SELECT chunk FROM vectors")), dtype=np.int64
            )
            keep = np.isin(ids, present)
            ids, docs, codes, scales = ids[keep], docs[keep], codes[keep], scales[keep]
        if rows:
            new = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
            new_codes, new_scales = quantize(new.reshape(len(rows), -1))
            codes = new_codes if codes.shape[0] == 0 else np.concatenate([codes, new_codes])
            scales = np.concatenate([scales, new_scales])
            ids = np.concatenate([ids, np.fromiter((r[0] for r in rows), np.int64, len(rows))])
            docs = np.concatenate([docs, np.fromiter((r[1] for r in rows), np.int64, len(rows))])
        return VectorSnapshot(ids, docs, np.ascontiguousarray(codes), scales, generation)
