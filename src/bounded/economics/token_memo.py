"""Token counts remembered by content, for the text a feature sends again and again.

Why: a feature's system prompt and its tool definitions are the same on every request, and a
chat resends its whole history each turn. Counting is the price of a budget or a token rate
limit: about 7 µs for 200 characters and 450 µs for 16,000 on the 2-core VM (bpe-openai's
Rust BPE), more than the rest of the gateway spends on a request. Looking a 16,000-character
text up by content costs about 5 µs (hashing it once), so each repeated text is counted once.

    count = remembered(counter)      # the same Callable[[str], int], remembering
    count(system_prompt)             # counted the first time, looked up after

The memo (:class:`bounded.text_memo.TextMemo`) holds at most ``MAX_CHARS`` characters of text
(about 2 MB for ASCII) and ``MAX_TEXTS`` texts; past either it forgets the oldest first. Only
text that is likely to come back should go through it: ``messages_tokens`` sends every
message but the last (the new one) and ``count_tools`` every tool definition.
"""

from __future__ import annotations

from collections.abc import Callable

from bounded.text_memo import TextMemo

Counter = Callable[[str], int]

MAX_CHARS = 2_000_000
MAX_TEXTS = 20_000


class CountMemo:
    """``count`` with the counts of texts it has seen, by content (thread-safe)."""

    __slots__ = ("_count", "_memo")

    def __init__(self, count: Counter, max_chars: int = MAX_CHARS, max_texts: int = MAX_TEXTS):
        self._count = count
        self._memo: TextMemo[int] = TextMemo(max_chars, max_texts)

    def __call__(self, text: str) -> int:
        found = self._memo.get(text)
        if found is not None:
            return found
        counted = self._count(text)
        self._memo.put(text, counted)
        return counted

    @property
    def chars(self) -> int:
        """Characters of text held now."""
        return self._memo.chars

    def __len__(self) -> int:
        return len(self._memo)


_memos: dict[Counter, CountMemo] = {}


def remembered(count: Counter) -> CountMemo:
    """The memo of ``count``, one per counter for the life of the process."""
    memo = _memos.get(count)
    if memo is None:
        if len(_memos) >= 64:  # counters registered again and again: start over
            _memos.clear()
        memo = _memos.setdefault(count, CountMemo(count))
    return memo
