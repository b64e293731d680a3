"""Embeddings on the wire: inputs as the provider takes them, the reply in OpenAI's shape.

Token-id arrays (what LangChain's OpenAI embeddings client sends by default, encoded with
cl100k_base, the encoding of OpenAI's embedding models) pass through to providers that
take them and are decoded to text for the ones that don't (the local model).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from bounded.economics.tokens import CL100K, decode_tokens
from bounded.errors import Unprocessable
from bounded.providers.base import EmbeddingResult, Provider


def provider_inputs(value: Any, provider: Provider) -> list[str] | list[list[int]]:
    """``input`` as a list, decoded from token ids if ``provider`` needs text."""
    if isinstance(value, str):
        return [value]
    if isinstance(value[0], int):
        value = [value]
    if isinstance(value[0], str) or getattr(provider, "accepts_token_ids", False):
        return list(value)
    texts: list[str] = []
    for i, ids in enumerate(value):
        try:
            texts.append(decode_tokens(ids, CL100K))
        except ValueError:
            raise Unprocessable(
                f"input[{i}] holds token ids that are not in {CL100K}", param=f"input[{i}]"
            ) from None
    return texts


def embeddings_response(model: str, result: EmbeddingResult, encoding: str) -> dict[str, Any]:
    data = []
    for i, vector in enumerate(result.vectors):
        embedding: Any = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
