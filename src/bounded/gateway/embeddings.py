"""The ``/v1/embeddings`` reply in OpenAI's shape, float or base64 (what the SDK asks for)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from bounded.providers.base import EmbeddingResult


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
