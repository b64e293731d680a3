"""Chunks a reader would accept: sections intact, code whole, sized, overlapping by sentences."""

from __future__ import annotations

import itertools

from bounded.retrieval.config import ChunkingConfig, JsonlFields
from bounded.retrieval.ingest.chunking import chunk_document
from bounded.retrieval.ingest.tokens import count_tokens, split_sentences
from bounded.retrieval.sources.parsers import parse

GUIDE = """---
title: Operator guide
labels: [ops]
team: platform
---
# Operator guide

A short introduction.

## Install

{prose}

```python
{code}
```

{more}

### Linux

Use the package manager.
"""


def _guide() -> str:
    prose = " ".join(f"Step {i} configures the gateway for region {i}." for i in range(30))
    code = "\n".join(
        f"value_{i} = compute({i})  # keep this line with its neighbours" for i in range(12)
    )
    more = " ".join(f"Note {i} explains the retry policy." for i in range(8))
    return GUIDE.format(prose=prose, code=code, more=more)


def _doc():  # type: ignore[no-untyped-def]
    (doc,) = parse("markdown", _guide().encode(), "guide.md", "guide", JsonlFields())
    return doc


def test_front_matter_gives_title_labels_and_metadata() -> None:
    doc = _doc()
    assert doc.title == "Operator guide"
    assert doc.labels == ("ops",)
    assert doc.metadata == {"team": "platform"}


def test_code_block_is_never_split_and_headings_travel_with_chunks() -> None:
    code = "\n".join(
        f"value_{i} = compute({i})  # keep this line with its neighbours" for i in range(12)
    )
    chunks = chunk_document(_doc().blocks, ChunkingConfig(max_tokens=80, overlap_tokens=20))
    holding = [c for c in chunks if "value_0 = compute(0)" in c.text]
    assert len(holding) == 1 and code in holding[0].text
    assert holding[0].headings == ("Operator guide", "Install")
    linux = [c for c in chunks if "package manager" in c.text]
    assert linux[0].headings == ("Operator guide", "Install", "Linux")
    # No chunk mixes two sections: the Linux text never shares a chunk with Install prose.
    assert "Step" not in linux[0].text and "Note" not in linux[0].text
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_prose_chunks_respect_the_size_and_overlap_by_whole_sentences() -> None:
    config = ChunkingConfig(max_tokens=60, overlap_tokens=15)
    chunks = chunk_document(_doc().blocks, config)
    prose = [c for c in chunks if c.text.startswith("Step")]
    assert len(prose) >= 3
    for chunk in chunks:
        if "compute(" not in chunk.text:
            assert chunk.tokens <= config.max_tokens
            assert count_tokens(chunk.text) == chunk.tokens
    for before, after in itertools.pairwise(prose):
        first = split_sentences(after.text)[0]
        # The next chunk opens with the previous chunk's last sentence, whole.
        assert before.text.endswith(first)
        assert count_tokens(first) <= config.overlap_tokens
    # Every sentence of the section is somewhere, in order.
    joined = " ".join(c.text for c in prose)
    for i in range(30):
        assert f"Step {i} configures the gateway for region {i}." in joined


def test_an_oversized_sentence_is_cut_at_words_and_a_huge_code_block_at_lines() -> None:
    from bounded.retrieval.documents import Block

    giant = " ".join(f"word{i}" for i in range(500))
    code = "\n".join(f"line_{i} = {i}" for i in range(400))
    chunks = chunk_document(
        [Block("paragraph", giant), Block("code", code)],
        ChunkingConfig(max_tokens=50, overlap_tokens=0),
    )
    assert all(c.tokens <= 50 for c in chunks)
    assert "\n".join(c.text for c in chunks if "line_" in c.text).count("line_") == 400
    assert all(not c.text.startswith("= ") for c in chunks)  # never mid-line


def test_html_keeps_headings_lists_and_code_and_drops_scripts() -> None:
    html = (
        b"<html><head><title>Shipping</title><script>track()</script></head><body>"
        b"<nav>Home | About</nav><h1>Shipping</h1><p>We ship in 3 days.</p>"
        b"<h2>Carriers</h2><ul><li>DHL</li><li>UPS</li></ul><pre>ship --fast\n  --now</pre>"
        b"</body></html>"
    )
    (doc,) = parse("html", html, "ship.html", "ship", JsonlFields())
    assert doc.title == "Shipping"
    kinds = [(b.kind, b.text) for b in doc.blocks]
    assert ("heading", "Carriers") in kinds
    assert ("list", "- DHL\n- UPS") in kinds
    assert ("code", "ship --fast\n  --now") in kinds
    assert not any("track()" in t or "Home | About" in t for _, t in kinds)
