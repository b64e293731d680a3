"""What flows through a sync: source items, parsed documents, blocks and chunks.

A source *item* is what a source lists (a file, a URL); it yields one or more *documents*
(a JSON Lines file yields one per line). Change detection works at both levels: an item whose
bytes hash the same is skipped whole; a changed item re-checks each document's own hash, so
one edited line of a JSON Lines file re-embeds one document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

HEADING_SEPARATOR = " › "
BlockKind = Literal["heading", "paragraph", "code", "list", "table"]


class DocumentError(Exception):
    """A per-document failure: it goes into the sync report and the sync carries on."""


@dataclass(frozen=True, slots=True)
class Block:
    kind: BlockKind
    text: str
    level: int = 0  # heading level 1..6


@dataclass(slots=True)
class ParsedDocument:
    doc_id: str
    title: str
    blocks: list[Block]
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        """Covers everything that ends up in the index, labels and metadata included."""
        payload = orjson.dumps(
            [
                self.title,
                [(b.kind, b.level, b.text) for b in self.blocks],
                self.metadata,
                sorted(self.labels),
            ],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True, slots=True)
class Chunk:
    position: int
    headings: tuple[str, ...]
    text: str
    tokens: int

    def embedding_text(self, title: str) -> str:
        """Title and heading path first: a chunk alone often lacks its subject."""
        context = heading_path(title, self.headings)
        return f"{context}\n{self.text}" if context else self.text


def heading_path(title: str, headings: tuple[str, ...]) -> str:
    """ "Guide › Install › Linux"; a first heading that repeats the title is said once."""
    parts = [title, *headings[1:]] if headings and headings[0] == title else [title, *headings]
    return HEADING_SEPARATOR.join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class ItemError:
    uri: str
    message: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
