"""The in-memory int8 scan that answers dense queries on the embedded engine."""

from __future__ import annotations

import numpy as np

from bounded.retrieval.engines.sqlite.vectors import VectorSnapshot, quantize


def _snapshot(rows: int = 5000, dims: int = 384) -> tuple[VectorSnapshot, np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((rows, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    codes, scales = quantize(vectors)
    ids = np.arange(10, 10 + rows, dtype=np.int64)
    return VectorSnapshot(ids, ids // 3, codes, scales, generation=1), vectors


def test_int8_scores_match_float32_products() -> None:
    snapshot, vectors = _snapshot()
    query = vectors[42] * 0.6 + vectors[7] * 0.4
    query /= np.linalg.norm(query)
    exact = vectors @ query
    for one_core in (True, False):
        approx = snapshot.scores(query, one_core=one_core)
        assert np.abs(approx - exact).max() < 0.01
        top = snapshot.top(query, 10, None, one_core=one_core)
        assert [chunk for chunk, _ in top[:2]] == [10 + 42, 10 + 7]
        assert len({c for c, _ in top} & {10 + int(i) for i in np.argsort(-exact)[:10]}) >= 9


def test_masked_rows_are_never_returned_even_when_they_match_exactly() -> None:
    snapshot, vectors = _snapshot()
    mask = np.ones(len(vectors), dtype=bool)
    mask[42] = False
    top = snapshot.top(vectors[42], 20, mask)
    assert 10 + 42 not in [chunk for chunk, _ in top]
    assert len(top) == 20


def test_rows_decode_the_stored_vectors() -> None:
    snapshot, vectors = _snapshot()
    found, decoded = snapshot.rows([12, 9, 5009])
    assert found == [12, 5009]  # 9 was never stored
    assert np.abs(decoded - vectors[[2, 4999]]).max() < 0.01
