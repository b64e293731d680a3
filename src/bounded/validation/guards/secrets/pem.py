"""PEM blocks: where each ends, and the spans of public ones (certificates, public keys),
whose bodies are random but no secret."""

from __future__ import annotations

import re

_PEM_BODY = re.compile(r"(?:[A-Za-z0-9+/=\s]|\\[nr]){0,65536}+")
SERVICE_ACCOUNT = re.compile(r"\"type\"\s*:\s*\"service_account\"")
_PUBLIC_PEM = re.compile(
    r"-----BEGIN (?:CERTIFICATE|PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE REQUEST|X509 CRL)-----"
)


class PemEnds:
    """Where PEM blocks end: after their END line, else after their body. Each "-----END "
    is looked for once per scan, so a text of many BEGIN lines stays linear."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._next_end = -2  # not looked for yet; -1: there is none

    def after(self, start: int) -> int:
        text = self._text
        if self._next_end == -2 or -1 < self._next_end < start:
            self._next_end = text.find("-----END ", start)
        end = self._next_end
        if end != -1 and end - start <= 65536:
            close = text.find("-----", end + 9, end + 80)
            if close != -1:
                return close + 5
        body = _PEM_BODY.match(text, start)
        return body.end() if body else start


def public_pem_spans(text: str, lower: str) -> list[tuple[int, int]]:
    if "-----begin" not in lower:
        return []
    ends = PemEnds(text)
    return [(m.start(), ends.after(m.end())) for m in _PUBLIC_PEM.finditer(text)]
