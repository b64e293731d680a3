"""Secrets by randomness: long tokens from the base64 alphabet whose entropy per character
random strings of their length reach, words glued into identifiers and public hashes left
alone."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator

from bounded.validation.guards.base import Finding
from bounded.validation.guards.secrets.rules import mixed


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


# The 1st percentile of the entropy of uniformly random base62 strings, by length (measured
# with 2,000 samples each); linear in between, flat past the ends.
_THRESHOLDS = ((24, 3.86), (32, 4.2), (40, 4.46), (64, 4.9), (128, 5.4), (256, 5.65))


def entropy_threshold(length: int) -> float:
    if length <= _THRESHOLDS[0][0]:
        return _THRESHOLDS[0][1]
    for (n0, h0), (n1, h1) in itertools.pairwise(_THRESHOLDS):
        if length <= n1:
            return h0 + (h1 - h0) * (length - n0) / (n1 - n0)
    return _THRESHOLDS[-1][1]


_TOKEN = re.compile(r"[A-Za-z0-9+/_\-](?<![A-Za-z0-9+/_\-=].)[A-Za-z0-9+/_\-]{23,}+={0,2}+")
_DOTTED = re.compile(r"\.\w")
_WORD_RUN = re.compile(r"[a-z]{4,}|[A-Z]{4,}")


def _wordy(token: str) -> bool:
    """Whether 40% or more of it is runs of four or more letters of one case: words glued
    together (``InvalidBase64PaddingDefect``), which random strings rarely have."""
    return sum(len(run) for run in _WORD_RUN.findall(token)) >= 0.4 * len(token)


_SRI = ("sha256-", "sha384-", "sha512-")  # subresource integrity: a public hash
_NOT_A_SECRET_BEFORE = (
    "base64,",
    "sha256-",
    "sha384-",
    "sha512-",
    "ssh-rsa ",
    "ssh-ed25519 ",
    "ssh-dss ",
    "nistp256 ",
    "nistp384 ",
    "nistp521 ",
)


def random_tokens(text: str, public: list[tuple[int, int]]) -> Iterator[Finding]:
    for m in _TOKEN.finditer(text):
        token = m.group()
        after = text[m.end() : m.end() + 2]
        if len(token) > 1024 or after[:1] in ("=", "@") or _DOTTED.match(after):
            continue  # blobs; an email's local part; a host or file name
        digits = sum(c.isdigit() for c in token)
        if digits < 2 or not mixed(token) or _wordy(token):
            continue
        bits = entropy(token)
        if bits < entropy_threshold(len(token)):
            continue
        if token.startswith(_SRI) or text[max(0, m.start() - 20) : m.start()].endswith(
            _NOT_A_SECRET_BEFORE
        ):
            continue
        if any(a <= m.start() < b for a, b in public):
            continue
        detail = f"{bits:.1f} bits/char over {len(token)} chars"
        yield Finding("high_entropy_string", m.start(), m.end(), 0.6, detail)
