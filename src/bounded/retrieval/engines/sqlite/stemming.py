"""The Porter stem of a word, as SQLite's ``porter`` tokenizer stores it.

Only used to look up how common a query word is in the FTS5 vocabulary; a rare mismatch
just means the word is kept in the query, which is the safe side.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("porter")


@functools.lru_cache(maxsize=65536)
def porter(word: str) -> str:
    return str(_stemmer().stemWord(word))
