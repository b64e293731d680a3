"""Ids a client chooses (``x-bounded-session``, an outcome's ``trace_id``) as bounded
stores them: as given, unless they hold personal data or a secret.

A client that uses an email address or an API key as its session id must not find it in
the ledger. Such an id is stored as ``sha256:`` and 24 hex digits of its hash instead:
the same input always maps to the same stored id, so outcomes still link to their calls.
"""

from __future__ import annotations

import functools
import hashlib

from bounded.validation.guards.base import Detector, ScanContext

_CONTEXT = ScanContext("input")


@functools.cache
def _detectors() -> tuple[Detector, ...]:
    from bounded.validation.guards import registry

    return (registry.build("pii", {}), registry.build("secrets", {}))


def stored_id(value: str) -> str:
    if any(d.scan(value, _CONTEXT) for d in _detectors()):
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return value


def scrub(text: str) -> str:
    """``text`` with personal data and secrets replaced by their kinds, for a log line
    (an upstream's error message may quote the prompt it refused)."""
    from bounded.validation.guards.redact import Vault, redact

    findings = [f for d in _detectors() for f in d.scan(text, _CONTEXT) if f.end > f.start]
    return redact(text, findings, Vault()) if findings else text
