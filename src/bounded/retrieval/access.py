"""Who may read what: access labels on documents, a viewer's labels at query time.

The rule, kept deliberately small:

- A document's labels are its collection's, its source's and its own (Markdown front matter
  ``labels:``, a JSON Lines ``labels`` field). A document with no labels is public.
- A caller's labels are its key's teams. The admin key and the development key see
  everything; a key with no teams sees public documents only.
- A chunk is visible when its document is public or shares a label with the caller. The
  check runs inside the index query (the FTS5 statement and the vector scan's mask), before
  top-k, so a forbidden chunk can neither appear nor push an allowed one out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

# FTS5 tokens standing for labels: "zq" and digits, so the porter tokenizer leaves them as
# they are (no vowel, no suffix), and no label, however spelled, breaks the MATCH syntax.
PUBLIC_TOKEN = "zq0"


def acl_token(label: str) -> str:
    return "zq" + str(int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big") + 1)


class PrincipalLike(Protocol):
    """What the gateway's ``Principal`` offers; no import of the gateway needed."""

    @property
    def admin(self) -> bool: ...

    @property
    def teams(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Viewer:
    """``labels=None`` sees everything; otherwise public documents plus these labels."""

    labels: frozenset[str] | None

    @classmethod
    def everything(cls) -> Viewer:
        return cls(None)

    @classmethod
    def public(cls) -> Viewer:
        return cls(frozenset())

    @classmethod
    def of(cls, *labels: str) -> Viewer:
        return cls(frozenset(labels))

    def sees(self, document_labels: tuple[str, ...] | list[str]) -> bool:
        if self.labels is None or not document_labels:
            return True
        return not self.labels.isdisjoint(document_labels)


def acl_match(viewer: Viewer) -> str | None:
    """The FTS5 condition on the acl column for ``viewer``; None when it sees everything."""
    if viewer.labels is None:
        return None
    tokens = [PUBLIC_TOKEN, *(acl_token(x) for x in sorted(viewer.labels))]
    return "acl : (" + " OR ".join(tokens) + ")"


def viewer_for(principal: PrincipalLike) -> Viewer:
    if principal.admin:
        return Viewer.everything()
    return Viewer(frozenset(principal.teams))
