"""The int8-compute copy of MiniLM: made once from the installed model, close to it, and
never a reason for embeddings to fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bounded.providers.local_embed import MiniLMEmbedder, default_model_path

TEXTS = [
    "How do I rotate an API key?",
    "Create the new key first, deploy it, then revoke the old one.",
    "The cafeteria opens at eight in the morning.",
]


def _vectors(embedder: MiniLMEmbedder) -> np.ndarray:
    return np.asarray(embedder.embed(TEXTS).vectors, dtype=np.float32)


def test_made_once_in_the_cache_and_close_to_the_packaged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOUNDED_CACHE_DIR", str(tmp_path / "cache"))
    quantized = _vectors(MiniLMEmbedder())
    made = list((tmp_path / "cache").glob("minilm-*.onnx"))
    assert len(made) == 1 and made[0].stat().st_size > 1_000_000
    stamp = made[0].stat().st_mtime_ns
    _vectors(MiniLMEmbedder())  # a second process finds it and does not make it again
    assert made[0].stat().st_mtime_ns == stamp

    packaged = _vectors(MiniLMEmbedder(model_path=default_model_path()))
    assert np.all((quantized * packaged).sum(axis=1) > 0.98)
    # What retrieval relies on: the answer is nearer the question than the unrelated text.
    similarity = quantized @ quantized[0]
    assert similarity[1] > similarity[2] + 0.1


def test_an_unwritable_cache_falls_back_to_the_packaged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("a file where the cache directory should be")
    monkeypatch.setenv("BOUNDED_CACHE_DIR", str(blocked / "cache"))
    vectors = _vectors(MiniLMEmbedder())
    packaged = _vectors(MiniLMEmbedder(model_path=default_model_path()))
    assert np.allclose(vectors, packaged, atol=1e-5)
