"""The answer's text: its sentences (cut at blank lines and list items too, citation markers
given to the sentence they close), the sources they cite, and their content words."""

from __future__ import annotations

import functools
import importlib.util
import re
from typing import Any

from bounded.retrieval.ingest.tokens import split_sentences

CITATION = re.compile(r"\[\s*\d{1,4}(?:\s*[,;–-]\s*\d{1,4})*\s*\]")
_LEADING_CITATIONS = re.compile(r"(?:\s*\[\s*\d{1,4}(?:\s*[,;–-]\s*\d{1,4})*\s*\])+")
# ".[1] Next sentence": tokens.split_sentences only splits right after the full stop.
_CITED_END = re.compile(
    r"(?<=[.!?])((?:\s?\[\s*\d{1,4}(?:\s*[,;–-]\s*\d{1,4})*\s*\])+)\s+(?=[A-Z0-9\"'(\[])"
)
# A blank line, or a line that starts a list item or a heading, starts a new sentence.
_BLOCK_BREAK = re.compile(r"\n\s*\n|\n(?=[ \t]*(?:[-*•+]|\d{1,3}[.)]|#{1,6})\s)")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
NO_CLAIM = re.compile(
    r"\b(?:i\s+(?:do\s*n[o']?t|don't|cannot|can't|am\s+not\s+(?:sure|able))"
    r"|(?:do|does)\s+not\s+(?:say|mention|contain|cover|specify|state)"
    r"|(?:don't|doesn't)\s+(?:say|mention|contain|cover|specify|state)"
    r"|no\s+information|not\s+(?:mentioned|covered|specified)\s+in"
    r"|unable\s+to\s+(?:find|answer|determine)|i'm\s+(?:sorry|not\s+sure))",
    re.IGNORECASE,
)
_STOP = """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves may might must shall us yes however therefore thus hence here's it's
    that's there's according source sources document documents passage passages context
    cited answer"""
STOP_WORDS = frozenset(_STOP.split())


@functools.cache
def _stem_words() -> Any:
    if importlib.util.find_spec("Stemmer") is None:
        return None
    import Stemmer

    return Stemmer.Stemmer("porter").stemWords


def content_words(text: str) -> list[str]:
    """Lower-cased, stop words and single letters dropped, Porter-stemmed (numbers kept
    whole: "2.5" is one word)."""
    words = [
        w
        for w in _TOKEN.findall(text.lower())
        if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())
    ]
    stem = _stem_words()
    if stem is None:  # no PyStemmer: a crude plural fold keeps "keys" matching "key"
        return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words]
    return [w if w[0].isdigit() else s for w, s in zip(words, stem(words), strict=True)]


def cited(text: str) -> tuple[int, ...]:
    """The source numbers the sentence's markers name: [2], [1, 3], [2-4]."""
    found: set[int] = set()
    for marker in CITATION.findall(text):
        for part in re.split(r"[,;]", marker.strip("[] ")):
            numbers = [int(n) for n in re.split(r"[–-]", part) if n.strip()]
            if numbers:
                first, last = min(numbers), max(numbers)
                found.update(range(first, min(last, first + 50) + 1))
    return tuple(sorted(found))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: tokens.split_sentences within blocks (paragraphs and
    list items), then cut after ".[1] ", with leading markers given to the sentence before."""
    spans: list[tuple[int, int]] = []
    start = 0
    for brk in [*_BLOCK_BREAK.finditer(text), None]:
        end = brk.start() if brk else len(text)
        spans.extend(_block_spans(text, start, end))
        start = brk.end() if brk else end
    return spans


def _block_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    block = text[start:end]
    out: list[tuple[int, int]] = []
    pos = 0
    for part in split_sentences(block):
        at = block.find(part, pos)
        if at < 0:  # cannot happen (parts are stripped slices); never lose the text
            continue
        pos = at + len(part)
        cut = at
        for match in _CITED_END.finditer(part):
            out.append((start + cut, start + at + match.end(1)))
            cut = at + match.end()
        out.append((start + cut, start + pos))
    merged: list[tuple[int, int]] = []
    for s, e in out:
        lead = _LEADING_CITATIONS.match(text, s, e)
        if lead and merged:
            merged[-1] = (merged[-1][0], lead.end())
            s = lead.end()
            while s < e and text[s].isspace():
                s += 1
        if s < e:
            merged.append((s, e))
    return merged
