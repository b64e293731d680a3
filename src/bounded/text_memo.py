"""Values remembered by a text's content, within a budget of characters.

    memo: TextMemo[int] = TextMemo(max_chars=2_000_000, max_texts=20_000)
    memo.get(text)          # None if not held
    memo.put(text, value)

For work the request path does again and again on the same text (a feature's system prompt,
a chat's history, its tool definitions): counting its tokens, scanning it with guards. Looking
a text up costs one hash of it, about 5 µs for 16,000 characters, far less than either. Past
either budget the oldest texts are forgotten first; a text over a quarter of the characters
is never held, so one huge text cannot flush all the others. Thread-safe: lookups take no
lock, additions do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class TextMemo(Generic[V]):
    __slots__ = ("_chars", "_lock", "_values", "max_chars", "max_texts")

    def __init__(self, max_chars: int = 2_000_000, max_texts: int = 20_000):
        self._values: dict[str, V] = {}
        self._chars = 0
        self._lock = threading.Lock()
        self.max_chars = max_chars
        self.max_texts = max_texts

    def get(self, text: str) -> V | None:
        return self._values.get(text)

    def put(self, text: str, value: V) -> None:
        if len(text) > self.max_chars // 4:
            return
        with self._lock:
            if text in self._values:
                return
            self._values[text] = value
            self._chars += len(text)
            values = self._values
            # A dict keeps insertion order: the first key is the oldest.
            while values and (self._chars > self.max_chars or len(values) > self.max_texts):
                oldest = next(iter(values))
                del values[oldest]
                self._chars -= len(oldest)

    @property
    def chars(self) -> int:
        """Characters of text held now."""
        return self._chars

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, text: str) -> bool:
        return text in self._values

    def __iter__(self) -> Iterator[str]:
        """The texts held now, oldest first (a copy: safe while others add)."""
        return iter(list(self._values))
