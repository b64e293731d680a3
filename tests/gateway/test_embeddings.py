"""``/v1/embeddings`` on the embedded MiniLM: token-id input (what LangChain's OpenAI client
sends) decoded, ``dimensions`` honoured or refused, never silently ignored."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(find_spec("onnxruntime") is None, reason="needs the `local` extra"),
]
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
CONFIG: dict[str, Any] = {
    "providers": {"local": {"kind": "local"}},
    "models": {"minilm": {"provider": "local", "model": "all-minilm-l6-v2", "kind": "embedding"}},
}
HELLO_WORLD_CL100K = [9906, 1917]  # "Hello world" in cl100k_base


def embed(url: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/embeddings", json={"model": "minilm", **body}, headers=AUTH, timeout=120
    )


def test_token_ids_are_decoded_for_the_local_model(gateway_factory: Any) -> None:
    with gateway_factory(CONFIG) as (url, _):
        from_ids = embed(url, input=[HELLO_WORLD_CL100K, HELLO_WORLD_CL100K[:1]])
        from_text = embed(url, input=["Hello world", "Hello"])
        single = embed(url, input=HELLO_WORLD_CL100K)
        bad = embed(url, input=[[10**9]])
    assert from_ids.status_code == 200, from_ids.text
    got = [d["embedding"] for d in from_ids.json()["data"]]
    want = [d["embedding"] for d in from_text.json()["data"]]
    assert len(got) == 2
    for a, b in zip(got, want, strict=True):
        assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.999  # same batch, same text
    one = single.json()["data"][0]["embedding"]
    # Alone rather than in a batch: the int8 model's activation scale is per batch, so the
    # vectors differ slightly (measured: cosine 0.98), but they are the same text's.
    assert sum(x * y for x, y in zip(one, got[0], strict=True)) > 0.97
    assert bad.status_code == 422
    assert bad.json()["error"]["param"] == "input[0]"


def test_dimensions_are_honoured_or_refused(gateway_factory: Any) -> None:
    with gateway_factory(CONFIG) as (url, _):
        native = embed(url, input="hi", dimensions=384)
        cut = embed(url, input="hi", dimensions=128)
    assert native.status_code == 200
    assert len(native.json()["data"][0]["embedding"]) == 384
    assert cut.status_code == 400
    assert cut.json()["error"]["code"] == "unsupported_dimensions"
    assert "384" in cut.json()["error"]["message"]
