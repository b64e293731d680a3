"""Structure-aware chunking: sections by heading, blocks kept whole, token-sized with overlap.

    chunks = chunk_document(doc.blocks, ChunkingConfig(max_tokens=200, overlap_tokens=40))

- A chunk never spans two sections; every chunk carries its heading path, so a chunk from
  "Install › Linux" still says what it is about.
- Paragraphs, lists and tables go whole into a chunk when they fit; a longer one splits at
  sentence boundaries (list items first), and a sentence is cut at words only when it alone
  exceeds the budget.
- Code blocks are never split while they are within 4x the budget (a half function helps no
  one); a bigger one splits at blank lines, then lines.
- Overlap repeats whole trailing sentences of the previous chunk of the same section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bounded.retrieval.config import ChunkingConfig
from bounded.retrieval.documents import Block, Chunk
from bounded.retrieval.ingest.tokens import count_tokens, split_sentences

CODE_WHOLE_FACTOR = 4
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    tokens: int
    group: int  # units of one paragraph share a group and join with a space
    code: bool = False


def chunk_document(blocks: list[Block], config: ChunkingConfig) -> list[Chunk]:
    chunks: list[Chunk] = []
    for headings, section in _sections(blocks):
        for text, tokens in _pack(_units(section, config.max_tokens), config):
            chunks.append(Chunk(len(chunks), headings, text, tokens))
    return chunks


def _sections(blocks: list[Block]) -> list[tuple[tuple[str, ...], list[Block]]]:
    sections: list[tuple[tuple[str, ...], list[Block]]] = []
    path: list[str] = []
    current: list[Block] = []
    for block in blocks:
        if block.kind == "heading":
            if current:
                sections.append((tuple(path), current))
                current = []
            level = max(1, block.level)
            path = [*path[: level - 1], block.text.strip()]
            continue
        if block.text.strip():
            current.append(block)
    if current:
        sections.append((tuple(path), current))
    return sections


def _units(blocks: list[Block], budget: int) -> list[_Unit]:
    units: list[_Unit] = []
    for group, block in enumerate(blocks):
        text = block.text.strip("\n") if block.kind == "code" else block.text.strip()
        tokens = count_tokens(text)
        if block.kind == "code":
            if tokens <= budget * CODE_WHOLE_FACTOR:
                units.append(_Unit(text, tokens, group, code=True))
            else:
                units.extend(
                    _Unit(p, count_tokens(p), group, True) for p in _split_code(text, budget)
                )
        elif tokens <= budget:
            units.append(_Unit(text, tokens, group))
        else:
            units.extend(_Unit(p, count_tokens(p), group) for p in _split_prose(text, budget))
    return units


def _split_prose(text: str, budget: int) -> list[str]:
    pieces: list[str] = []
    items = [i for i in _LIST_ITEM.split(text) if i.strip()] if _LIST_ITEM.search(text) else [text]
    for item in items:
        for sentence in split_sentences(item):
            if count_tokens(sentence) <= budget:
                pieces.append(sentence)
            else:
                pieces.extend(_split_words(sentence, budget))
    return pieces


def _split_words(text: str, budget: int) -> list[str]:
    pieces: list[str] = []
    words: list[str] = []
    used = 0
    for word in text.split():
        cost = count_tokens(word)
        if words and used + cost > budget:
            pieces.append(" ".join(words))
            words, used = [], 0
        words.append(word)
        used += cost
    if words:
        pieces.append(" ".join(words))
    return pieces


def _split_code(text: str, budget: int) -> list[str]:
    pieces: list[str] = []
    lines: list[str] = []
    used = 0
    for line in text.split("\n"):
        cost = count_tokens(line) + 1
        # Prefer to break at a blank line once the piece is half full.
        if lines and (used + cost > budget or (not line.strip() and used > budget // 2)):
            pieces.append("\n".join(lines).strip("\n"))
            lines, used = [], 0
        lines.append(line)
        used += cost
    if lines and "\n".join(lines).strip():
        pieces.append("\n".join(lines).strip("\n"))
    return pieces


def _pack(units: list[_Unit], config: ChunkingConfig) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    current: list[_Unit] = []
    used = 0
    for unit in units:
        if current and used + unit.tokens > config.max_tokens:
            out.append(_render(current))
            current = _overlap(current, config.overlap_tokens, config.max_tokens - unit.tokens)
            used = sum(u.tokens for u in current)
        current.append(unit)
        used += unit.tokens
    if current:
        out.append(_render(current))
    return out


def _overlap(previous: list[_Unit], overlap: int, room: int) -> list[_Unit]:
    """Whole trailing sentences of the previous chunk's prose, at most ``overlap`` tokens."""
    limit = min(overlap, room)
    if limit <= 0 or not previous or previous[-1].code:
        return []
    last = previous[-1]
    sentences = split_sentences(last.text)
    kept: list[str] = []
    used = 0
    for sentence in reversed(sentences):
        cost = count_tokens(sentence)
        if used + cost > limit:
            break
        kept.insert(0, sentence)
        used += cost
    if not kept or (len(kept) == len(sentences) and len(previous) == 1):
        # Repeating the whole previous chunk would be a duplicate, not an overlap.
        return []
    text = " ".join(kept)
    return [_Unit(text, count_tokens(text), last.group)]


def _render(units: list[_Unit]) -> tuple[str, int]:
    parts: list[str] = []
    for i, unit in enumerate(units):
        if i and units[i - 1].group == unit.group and not unit.code:
            parts.append(" ")
        elif i:
            parts.append("\n\n")
        parts.append(unit.text)
    text = "".join(parts)
    return text, count_tokens(text)
