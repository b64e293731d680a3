"""Context assembly for a feature: retrieve for the last user message, pack the best chunks
into a token budget, inject them with numbered sources, return the citations.

    assembled = await assemble_context(service, feature.retrieval, body["messages"], viewer)
    body = {**body, "messages": assembled.messages}
    ...
    response["bounded"] = {"citations": assembled.citations_json()}

The sources go into the last user message, not the system prompt: retrieved text is data
a document author wrote, and must not gain the authority of the operator's instructions.
A chunk that does not fit is shortened to its leading whole sentences or left out; a
sentence is never cut.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bounded.errors import Unavailable
from bounded.retrieval.access import Viewer
from bounded.retrieval.config import FeatureRetrieval
from bounded.retrieval.documents import heading_path
from bounded.retrieval.ingest.tokens import count_tokens, split_sentences

if TYPE_CHECKING:  # numpy-backed; the gateway imports this module without loading them
    from bounded.retrieval.search import Hit
    from bounded.retrieval.service import RetrievalService

TokenCount = Callable[[str], int]
# A retrieved hit kept as it is, replaced (its text redacted), or left out (None).
Screen = Callable[["Hit"], "Hit | None"]
PREAMBLE = (
    "Answer using the numbered sources below and cite them like [1]. If they do not "
    "contain the answer, say so.\n\nSources:\n"
)
QUESTION = "\nQuestion: "
HEADER_LIMIT = 4096  # bytes of x-bounded-citations; the JSON body always has them all


@dataclass(frozen=True, slots=True)
class Citation:
    index: int
    hit: Hit
    text: str
    truncated: bool

    def as_json(self) -> dict[str, Any]:
        c = self.hit.chunk
        return {
            "index": self.index,
            "doc_id": c.doc_id,
            "chunk_id": c.chunk_id,
            "title": c.title,
            "headings": list(c.headings),
            "source": c.item,
            "position": c.position,
            "score": round(self.hit.score, 6),
            "truncated": self.truncated,
        }


@dataclass
class AssembledContext:
    messages: list[dict[str, Any]]
    citations: list[Citation] = field(default_factory=list)
    context_tokens: int = 0

    def citations_json(self) -> list[dict[str, Any]]:
        return [c.as_json() for c in self.citations]

    def header(self) -> str:
        return citations_header(self.citations_json())


async def assemble_context(
    service: RetrievalService,
    retrieval: FeatureRetrieval,
    messages: list[dict[str, Any]],
    viewer: Viewer,
    count: TokenCount | None = None,
    screen: Screen | None = None,
) -> AssembledContext:
    """The messages with sources injected, and their citations. Searching (embedding the
    query, scanning vectors) is blocking work, so it runs in a thread."""
    return await asyncio.to_thread(
        assemble_context_sync, service, retrieval, messages, viewer, count, screen
    )


def assemble_context_sync(
    service: RetrievalService,
    retrieval: FeatureRetrieval,
    messages: list[dict[str, Any]],
    viewer: Viewer,
    count: TokenCount | None = None,
    screen: Screen | None = None,
) -> AssembledContext:
    position, query = last_user_text(messages)
    if position is None or not query.strip():
        return AssembledContext(list(messages))
    try:
        hits = service.search(
            retrieval.collection,
            query,
            viewer=viewer,
            top_k=retrieval.top_k,
            mode=retrieval.mode,
            filters=dict(retrieval.filters),
            mmr_lambda=retrieval.mmr_lambda,
        )
    except sqlite3.Error as exc:
        # A broken or locked index file: a clear 502 naming the collection, not a 500.
        raise Unavailable(
            f"the index of collection {retrieval.collection!r} is unavailable: {exc}"
        ) from exc
    if screen is not None:
        # Retrieved text is data someone else wrote: guards may drop or redact a chunk
        # before it is packed, so nothing they refuse reaches the prompt.
        hits = [kept for kept in (screen(hit) for hit in hits) if kept is not None]
    counter = count or count_tokens
    citations, used = pack(hits, retrieval.max_context_tokens, counter)
    if not citations:
        return AssembledContext(list(messages))
    block = render(citations)
    out = [dict(m) for m in messages]
    out[position] = _prepend(out[position], block)
    return AssembledContext(out, citations, used)


def last_user_text(messages: list[dict[str, Any]]) -> tuple[int | None, str]:
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return i, content
        if isinstance(content, list):
            parts = [
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            ]
            return i, "\n".join(str(p) for p in parts)
        return i, ""
    return None, ""


def pack(hits: list[Hit], budget: int, count: TokenCount) -> tuple[list[Citation], int]:
    """Best chunks first, each whole or cut back to whole sentences, within ``budget``
    (counted over the whole injected block, preamble and separators included)."""
    citations: list[Citation] = []
    for hit in hits:
        index = len(citations) + 1
        whole = Citation(index, hit, hit.chunk.text, False)
        if count(render([*citations, whole])) <= budget:
            citations.append(whole)
            continue
        kept: list[str] = []
        for sentence in split_sentences(hit.chunk.text):
            trial = Citation(index, hit, " ".join([*kept, sentence]), True)
            if count(render([*citations, trial])) > budget:
                break
            kept.append(sentence)
        if kept:
            citations.append(Citation(index, hit, " ".join(kept), True))
    return citations, count(render(citations)) if citations else 0


def _head(index: int, hit: Hit) -> str:
    path = heading_path(hit.chunk.title, hit.chunk.headings)
    return f"[{index}] {path or hit.chunk.doc_id}\n"


def render(citations: list[Citation]) -> str:
    blocks = [_head(c.index, c.hit) + c.text for c in citations]
    return PREAMBLE + "\n\n".join(blocks) + "\n" + QUESTION


def _prepend(message: dict[str, Any], block: str) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        return {**message, "content": [{"type": "text", "text": block}, *content]}
    return {**message, "content": block + str(content or "")}


def citations_header(citations: list[dict[str, Any]]) -> str:
    """Compact, ASCII-only JSON (header values are latin-1): index, doc and chunk ids,
    as many as fit in HEADER_LIMIT; the body carries the full list."""
    compact = [
        {"index": c["index"], "doc_id": c["doc_id"], "chunk_id": c["chunk_id"]} for c in citations
    ]
    while compact:
        value = json.dumps(compact, ensure_ascii=True, separators=(",", ":"))
        if len(value) <= HEADER_LIMIT:
            return value
        compact.pop()
    return "[]"


def citations_event(
    citations: list[dict[str, Any]], like: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The stream's last chunk before [DONE]: shaped like the usage chunk (no choices), so
    OpenAI SDKs parse it, with the citations under ``bounded``."""
    like = like or {}
    return {
        "id": like.get("id", "chatcmpl-bounded"),
        "object": "chat.completion.chunk",
        "created": like.get("created", 0),
        "model": like.get("model", ""),
        "choices": [],
        "bounded": {"citations": citations},
    }


def attach_citations(response: dict[str, Any], citations: list[dict[str, Any]]) -> dict[str, Any]:
    return {**response, "bounded": {**(response.get("bounded") or {}), "citations": citations}}
