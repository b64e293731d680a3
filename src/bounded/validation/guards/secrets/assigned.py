"""Secrets by name: a password, key, secret or token assigned a value (``password = ...``,
``api_key: ...``, ``dbPassword := ...``), placeholders and code left alone."""

from __future__ import annotations

import re
from collections.abc import Iterator

from bounded.validation.guards.base import Finding
from bounded.validation.guards.secrets.randomness import entropy
from bounded.validation.guards.secrets.rules import PLACEHOLDER

# A name (found in the lowercased text: one case-sensitive scan, not an IGNORECASE one,
# which re cannot skip through), then, in the text, the rest of the name and the value.
_NAME_HIT = re.compile(r"p(?:ass(?:word|wd|phrase)?|wd)|secret|key|token")
_ASSIGN_TAIL = re.compile(
    r"([A-Za-z0-9_\-]{0,24})[\"']?\s{0,3}(?::=|=>|=|:)\s{0,3}"
    r"(?:([\"'`])([^\"'`\n]{6,256}?)\2|([^\s\"'`,;<>&]{6,256}))"
)
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_KEY_NAMES = ("api", "access", "private", "secret", "auth", "client", "signing", "encrypt")
_NOT_SECRET_NAME = re.compile(r"(?i)hash|policy|length|len$|file|path|url|type|name|field|reset")
_CODE_LIKE = re.compile(
    r"[()\[\]{}$]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$|^(?:self|this|os|env)\."
    r"|^[a-z]+(?:_[a-z]+)+$|^[a-z]+(?:[A-Z][a-z]+)+$"  # identifiers: pass_through, getToken
)


def _char_classes(value: str) -> int:
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def assigned(text: str, lower: str) -> Iterator[Finding]:
    pos = 0
    while (hit := _NAME_HIT.search(lower, pos)) is not None:
        pos = hit.end()
        tail = _ASSIGN_TAIL.match(text, hit.end())
        if tail is None or tail.group(1)[:1].islower():
            continue  # no assignment; or "passing", "tokens", "keyboard", "secretary"
        pos = tail.end()  # a value is no name: "password=password=..." stays linear
        start = hit.start()
        while start > 0 and hit.start() - start < 40 and text[start - 1] in _NAME_CHARS:
            start -= 1
        if start < hit.start() and text[hit.start() - 1].isalpha() and text[hit.start()].islower():
            continue  # "bypass", "monkey" (camelCase "dbPassword" counts)
        name = text[start : tail.end(1)]
        word = hit.group()
        if word == "key" and not any(k in name.lower() for k in _KEY_NAMES):
            continue  # key = "user_id" is a dict key
        group = 3 if tail.group(3) is not None else 4
        value = tail.group(group)
        if _NOT_SECRET_NAME.search(name) or PLACEHOLDER.match(value) or _CODE_LIKE.search(value):
            continue
        detail = f"assigned to {name[:40]}"
        if word.startswith("p"):
            if len(value) >= 8 and _char_classes(value) >= 2 and entropy(value) >= 2.5:
                yield Finding("password", *tail.span(group), 0.8, detail)
        elif len(value) >= 16 and entropy(value) >= 3.0 and any(c.isdigit() for c in value):
            yield Finding("generic_secret", *tail.span(group), 0.8, detail)
