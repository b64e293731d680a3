"""Redaction with restore: findings become typed placeholders, and the answer gets the
values back.

    vault = Vault()                                    # one per request, in memory only
    prompt = redact("mail bob@example.com", pii.scan(text, ctx), vault)
    # "mail <EMAIL_1>"                                  -> sent to the model
    restore("I wrote to <EMAIL_1>.", vault)             # "I wrote to bob@example.com."

    restorer = Restorer(vault)                         # for a stream of chunks
    restorer.feed("I wrote to <EMA") + restorer.feed("IL_1>.") + restorer.flush()

A placeholder is ``<`` + the finding's kind in capitals + ``_`` + a number + ``>``:
``<EMAIL_1>``, ``<PHONE_2>``, ``<GITHUB_TOKEN_1>``. A small model reads it as "an email
address" and copies it through intact (one common tokenisation, no punctuation inside). Real
text seldom holds one, and when it does (a template, this docstring) that number is taken:
``redact`` numbers around every placeholder-shaped string it has seen in the request, so a
literal ``<EMAIL_1>`` the user wrote is never confused with a value and comes back as it was.
Within one vault the same value always gets the same placeholder, so the model can tell that
two mentions are one address.

The vault holds the values and nothing else needs to: it cannot be pickled or copied, and its
``repr`` shows only how many it holds. Drop it when the request ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NoReturn

from bounded.validation.guards.base import Finding

# A label is a capital, then up to 39 capitals, digits and underscores; the number 1-6 digits.
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]{0,39}?)_([1-9][0-9]{0,5})>")
_LABEL_JUNK = re.compile(r"[^A-Z0-9]+")


def label(kind: str) -> str:
    """``github_token`` -> ``GITHUB_TOKEN``; anything odd in a kind becomes ``_``."""
    text = _LABEL_JUNK.sub("_", kind.upper()).strip("_")
    if not text or not text[0].isalpha():
        text = "SECRET_" + text if text else "SECRET"
    return text[:40]


class Vault:
    """Placeholders and the values they stand for, for one request.

    >>> vault = Vault()
    >>> vault.placeholder_for("email", "a@b.example")
    '<EMAIL_1>'
    >>> vault.placeholder_for("email", "a@b.example")
    '<EMAIL_1>'
    >>> vault.value_of("<EMAIL_1>")
    'a@b.example'
    """

    __slots__ = ("_by_value", "_prefixes", "_taken", "_values")

    def __init__(self) -> None:
        self._values: dict[str, str] = {}  # placeholder -> value
        self._by_value: dict[tuple[str, str], str] = {}  # (label, value) -> placeholder
        self._taken: set[str] = set()  # placeholder-shaped text already in the request
        self._prefixes: set[str] = set()  # every prefix of every placeholder, for streams

    def placeholder_for(self, kind: str, value: str) -> str:
        name = label(kind)
        found = self._by_value.get((name, value))
        if found is not None:
            return found
        number = 1
        while f"<{name}_{number}>" in self._values or f"<{name}_{number}>" in self._taken:
            number += 1
        placeholder = f"<{name}_{number}>"
        self._values[placeholder] = value
        self._by_value[(name, value)] = placeholder
        self._prefixes.update(placeholder[:i] for i in range(1, len(placeholder)))
        return placeholder

    def reserve(self, text: str) -> None:
        """Mark placeholder-shaped strings already in ``text`` as taken (not ours)."""
        if "<" in text:
            for m in PLACEHOLDER.finditer(text):
                if m.group() not in self._values:
                    self._taken.add(m.group())

    def value_of(self, placeholder: str) -> str | None:
        return self._values.get(placeholder)

    def could_start(self, text: str) -> bool:
        """Whether ``text`` is the beginning of one of this vault's placeholders."""
        return text in self._prefixes

    def clear(self) -> None:
        for store in (self._values, self._by_value, self._taken, self._prefixes):
            store.clear()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, placeholder: object) -> bool:
        return placeholder in self._values

    def __repr__(self) -> str:
        return f"<Vault: {len(self._values)} placeholders>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Vault holds redacted values and is never pickled, copied or stored")


def merge_spans(findings: Iterable[Finding], length: int) -> list[tuple[int, int, str]]:
    """Findings as disjoint ``(start, end, kind)`` spans: overlapping ones merge into their
    union, named after the longest of them. Whole-text findings (0, 0) have no span."""
    spans = sorted(
        (max(0, f.start), min(length, f.end), f.kind)
        for f in findings
        if f.end > f.start and f.start < length
    )
    merged: list[tuple[int, int, str]] = []
    longest = 0
    for start, end, kind in spans:
        if merged and start < merged[-1][1]:
            s0, e0, k0 = merged[-1]
            if end - start > longest:
                k0, longest = kind, end - start
            merged[-1] = (s0, max(e0, end), k0)
        else:
            merged.append((start, end, kind))
            longest = end - start
    return merged


def redact(text: str, findings: Iterable[Finding], vault: Vault) -> str:
    """``text`` with each finding's span replaced by its placeholder (kept in ``vault``)."""
    vault.reserve(text)
    out: list[str] = []
    pos = 0
    for start, end, kind in merge_spans(findings, len(text)):
        out.append(text[pos:start])
        out.append(vault.placeholder_for(kind, text[start:end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def restore(text: str, vault: Vault) -> str:
    """``text`` with this vault's placeholders replaced by their values; any other
    placeholder-shaped text is left as it is."""
    if "<" not in text or not len(vault):
        return text
    return PLACEHOLDER.sub(lambda m: vault.value_of(m.group()) or m.group(), text)


class Restorer:
    """Restores placeholders in a stream, even when one is split across chunks.

    Only a possible beginning of one of the vault's placeholders is held back (at most the
    length of the longest, and only while it still could be one), so "a < b" and HTML pass
    straight through.

        restorer = Restorer(vault)
        for chunk in stream:
            yield restorer.feed(chunk)
        yield restorer.flush()
    """

    __slots__ = ("_held", "_vault")

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk if self._held else chunk
        self._held = ""
        cut = text.rfind("<")
        if cut != -1 and self._vault.could_start(text[cut:]):
            text, self._held = text[:cut], text[cut:]
        return restore(text, self._vault)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return restore(text, self._vault)
