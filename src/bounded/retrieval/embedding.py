"""Embedders for collections, by name, with counters a test or a status page can read.

    embedder = build_embedder("all-minilm-l6-v2")
    matrix = embedder.embed(["a passage", "another"])   # float32, (2, 384), unit rows
    embedder.texts_embedded                             # 2

The local MiniLM model lives in :mod:`bounded.providers.local_embed`; this wrapper adds the
counters (an unchanged re-sync must embed nothing, and that is checked by reading them) and
hands numpy arrays to the index instead of lists of floats.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bounded.retrieval.config import EMBEDDING_MODELS

Matrix = npt.NDArray[np.float32]


class Embedder(Protocol):
    name: str
    dimensions: int
    texts_embedded: int
    calls: int

    def embed(self, texts: list[str]) -> Matrix:
        """Unit-length float32 rows, one per text, in input order."""
        ...


class LocalMiniLM:
    name = "all-minilm-l6-v2"
    dimensions = 384

    def __init__(self, threads: int | None = None) -> None:
        from bounded.providers.local_embed import MiniLMEmbedder

        self._model = MiniLMEmbedder(threads=threads)
        self._lock = threading.Lock()
        self.texts_embedded = 0
        self.calls = 0

    def embed(self, texts: list[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        result = self._model.embed(texts)
        with self._lock:
            self.texts_embedded += len(texts)
            self.calls += 1
        return np.asarray(result.vectors, dtype=np.float32)


EMBEDDERS: dict[str, Callable[[], Embedder]] = {"all-minilm-l6-v2": LocalMiniLM}
NO_EMBEDDING = "none"


def known_embedders() -> list[str]:
    return list(EMBEDDING_MODELS)


def build_embedder(name: str) -> Embedder | None:
    if name == NO_EMBEDDING:
        return None
    try:
        return EMBEDDERS[name]()
    except KeyError:
        raise ValueError(f"unknown embedding model {name!r}; known: {known_embedders()}") from None
