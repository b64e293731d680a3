"""Token estimates and sentence boundaries, with no tokenizer download.

The estimate counts words and punctuation, and one more piece for every 7 characters of a
long word; on SciFact abstracts it matches MiniLM's WordPiece count on average (ratio 1.00,
at most 1.26), and English BPE tokenizers land close to it too. Chunk sizes and context
budgets are planned with it.
"""

from __future__ import annotations

import re

_PIECES = re.compile(r"\w+|[^\w\s]")
# A sentence ends at . ! ? (optionally closed by quotes or brackets) followed by space and
# an upper-case letter, digit or opening mark; abbreviations such as "e.g. the" do not split.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])")
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "etc.", "vs.", "Fig.", "Dr.", "Mr.", "Mrs.", "No.")


def count_tokens(text: str) -> int:
    return sum(1 + (len(piece) - 1) // 7 for piece in _PIECES.findall(text))


def split_sentences(text: str) -> list[str]:
    """Sentences with their trailing punctuation; newlines inside a sentence are kept."""
    parts: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()]
        if candidate.rstrip().endswith(_ABBREVIATIONS):
            continue
        end = match.end() - len(match.group(0)) + len(match.group(0).rstrip())
        parts.append(text[start:end].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return [p for p in parts if p]
