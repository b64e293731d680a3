"""Context assembly: within the token budget, whole sentences only, numbered citations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bounded.retrieval.access import Viewer
from bounded.retrieval.config import FeatureRetrieval
from bounded.retrieval.context import (
    PREAMBLE,
    assemble_context,
    attach_citations,
    citations_event,
    render,
)
from bounded.retrieval.ingest.tokens import count_tokens, split_sentences
from bounded.retrieval.service import RetrievalService
from tests.retrieval.conftest import Build
from tests.retrieval.helpers import folder

ROTATION = " ".join(
    [
        "Rotate an API key by creating a new key first.",
        "Deploy the new key to every service that calls the gateway.",
        "Watch the dashboard until the old key sees no traffic.",
        "Then revoke the old key with bounded keys revoke.",
        "A revoked key is refused from the next request on.",
    ]
)


@pytest.fixture
def service(build: Build, tmp_path: Path) -> RetrievalService:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "keys.md").write_text(f"# Keys\n\n## Rotation\n\n{ROTATION}\n")
    (root / "budgets.md").write_text(
        "# Budgets\n\nBudgets reserve spend before a call. Key rotation does not reset a budget.\n"
    )
    (root / "café.md").write_text("# Café keys\n\nThe café's key box holds spare door keys.\n")
    svc = build({"kb": {"sources": [folder(root)]}})
    assert not svc.sync("kb").errors
    return svc


MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "How do I rotate an API key?"},
]


async def test_sources_are_injected_with_numbered_citations(service: RetrievalService) -> None:
    retrieval = FeatureRetrieval(collection="kb", top_k=3, max_context_tokens=400)
    assembled = await assemble_context(service, retrieval, MESSAGES, Viewer.everything())
    assert assembled.messages[:3] == MESSAGES[:3]  # only the question's message changes
    content = assembled.messages[3]["content"]
    assert content.startswith(PREAMBLE) and content.endswith("How do I rotate an API key?")
    assert assembled.citations[0].hit.chunk.doc_id.endswith("keys.md")
    for citation in assembled.citations:
        assert f"[{citation.index}] " in content and citation.text in content
    assert "[1] Keys › Rotation\n" in content
    assert MESSAGES[3]["content"] == "How do I rotate an API key?"  # caller's list untouched

    body = attach_citations({"id": "x", "choices": []}, assembled.citations_json())
    assert body["bounded"]["citations"][0]["index"] == 1
    header = assembled.header()
    assert header.isascii() and json.loads(header)[0]["doc_id"].endswith("keys.md")
    event = citations_event(assembled.citations_json(), {"id": "c1", "model": "m"})
    assert event["choices"] == [] and event["id"] == "c1" and event["bounded"]["citations"]


@pytest.mark.parametrize("budget", [40, 60, 90, 130, 200])
async def test_the_budget_holds_and_no_sentence_is_cut(
    service: RetrievalService, budget: int
) -> None:
    retrieval = FeatureRetrieval(collection="kb", top_k=3, max_context_tokens=budget)
    assembled = await assemble_context(service, retrieval, MESSAGES, Viewer.everything())
    rendered = render(assembled.citations)
    assert count_tokens(rendered) <= budget
    assert assembled.context_tokens == (count_tokens(rendered) if assembled.citations else 0)
    for citation in assembled.citations:
        full = citation.hit.chunk.text
        if not citation.truncated:
            assert citation.text == full
            continue
        sentences = split_sentences(full)
        kept = split_sentences(citation.text)
        assert kept == sentences[: len(kept)] and 0 < len(kept) < len(sentences)
    if budget <= 40:  # not even one sentence fits: nothing injected, nothing cited
        assert assembled.citations == [] and assembled.messages == MESSAGES


async def test_a_bpe_counter_from_the_gateway_is_honoured(service: RetrievalService) -> None:
    def characters(text: str) -> int:  # any Callable[[str], int]: one "token" per character
        return len(text)

    retrieval = FeatureRetrieval(collection="kb", top_k=3, max_context_tokens=500)
    assembled = await assemble_context(
        service, retrieval, MESSAGES, Viewer.everything(), characters
    )
    assert assembled.citations and len(render(assembled.citations)) <= 500


async def test_no_user_message_or_a_parts_message(service: RetrievalService) -> None:
    retrieval = FeatureRetrieval(collection="kb")
    only_system = [{"role": "system", "content": "x"}]
    assembled = await assemble_context(service, retrieval, only_system, Viewer.everything())
    assert assembled.messages == only_system and assembled.citations == []
    parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "rotate an API key"},
                {"type": "image_url", "image_url": {"url": "x"}},
            ],
        }
    ]
    assembled = await assemble_context(service, retrieval, parts, Viewer.everything())
    content = assembled.messages[0]["content"]
    assert content[0]["type"] == "text" and content[0]["text"].startswith(PREAMBLE)
    assert content[1:] == parts[0]["content"]
