"""The ``secrets`` detector: the rules whose keywords the text holds, named values and random
tokens, overlaps resolved (a known format beats a named value beats randomness), and the
registry's factory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bounded.validation.guards.base import Finding, GuardConfigError, ScanContext
from bounded.validation.guards.pii import resolve_overlaps
from bounded.validation.guards.secrets.assigned import assigned
from bounded.validation.guards.secrets.pem import SERVICE_ACCOUNT, PemEnds, public_pem_spans
from bounded.validation.guards.secrets.randomness import random_tokens
from bounded.validation.guards.secrets.rules import (
    KEYWORDS,
    KINDS,
    PRIORITY,
    RULES,
    TIERS,
    Rule,
    mixed,
)


def _lowered(text: str) -> str:
    """``text.lower()`` with the same offsets ("İ" alone lowers to two characters)."""
    lower = text.lower()
    if len(lower) != len(text):
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return lower


_AWS_SECRET_NEAR = re.compile(
    r"[A-Za-z0-9/+](?<![A-Za-z0-9/+=].)[A-Za-z0-9/+]{39}(?![A-Za-z0-9/+=])"
)


class SecretsDetector:
    """Finds credentials by format, by name and by randomness; thread-safe."""

    kind = "secrets"

    def __init__(self, kinds: list[str] | None = None, use_entropy: bool = True) -> None:
        chosen = set(KINDS if kinds is None else kinds)
        unknown = sorted(chosen - set(KINDS))
        if "private_key" in chosen:  # a key file's key is reported as the file's kind
            chosen.add("gcp_service_account_key")
        if unknown or not chosen:
            raise GuardConfigError(
                f"secrets: kinds must be a non-empty subset of {', '.join(KINDS)}; "
                f"got {unknown or sorted(chosen)}"
            )
        self.kinds = frozenset(chosen)
        self._entropy = use_entropy and "high_entropy_string" in chosen
        self._assign = bool(chosen & {"password", "generic_secret"})

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        findings: list[Finding] = []
        try:
            lower = _lowered(text)
            present = {k for k in KEYWORDS if k in lower}
            if present:
                for rule in RULES:
                    if not present.isdisjoint(rule.keywords):
                        findings.extend(self._apply(rule, text))
            if any(f.kind == "aws_access_key_id" for f in findings):
                findings.extend(self._aws_pairs(text, findings))
            if self._assign:
                findings.extend(assigned(text, lower))
            if self._entropy:
                findings.extend(random_tokens(text, public_pem_spans(text, lower)))
        except Exception as exc:  # a detector never raises on odd text; it says so
            detail = f"scan stopped ({type(exc).__name__})"
            findings.append(Finding("secrets_incomplete", 0, 0, 0.0, detail=detail))
        kept = [f for f in findings if f.kind in self.kinds or f.kind == "secrets_incomplete"]
        return resolve_overlaps(kept, PRIORITY, TIERS)

    def _apply(self, rule: Rule, text: str) -> Iterator[Finding]:
        ends = PemEnds(text)
        key_file = '"service_account"' in text
        for m in rule.pattern.finditer(text):
            start, end = m.span(rule.group)
            if rule.kind == "private_key":
                end = ends.after(m.end())
                if key_file and SERVICE_ACCOUNT.search(text, max(0, start - 4096), end + 4096):
                    kind = "gcp_service_account_key"
                    yield Finding(kind, start, end, rule.score, "GCP service account private key")
                    continue
            elif start > 0 and text[start - 1].isalnum() and rule.group == 0:
                continue  # inside a longer token
            if rule.kind == "azure_sas_token" and "sv=" not in text[max(0, start - 512) : start]:
                continue
            if rule.check is not None and not rule.check(text[start:end]):
                continue
            yield Finding(rule.kind, start, end, rule.score, rule.detail)

    def _aws_pairs(self, text: str, findings: list[Finding]) -> Iterator[Finding]:
        """A 40-character base64 token within 200 characters of an access key id."""
        named = {(f.start, f.end) for f in findings if f.kind == "aws_secret_access_key"}
        for f in findings:
            if f.kind != "aws_access_key_id":
                continue
            for m in _AWS_SECRET_NEAR.finditer(text, max(0, f.start - 200), f.end + 200):
                if m.span() not in named and mixed(m.group()):
                    detail = "AWS secret access key (beside its key id)"
                    yield Finding("aws_secret_access_key", m.start(), m.end(), 0.9, detail)


def build(options: dict[str, Any]) -> SecretsDetector:
    """The registry's factory: ``secrets`` with options from bounded.yaml."""
    allowed = {"kinds", "entropy"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise GuardConfigError(f"secrets: unknown options {unknown}; known: {sorted(allowed)}")
    kinds = options.get("kinds")
    if kinds is not None and (
        not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds)
    ):
        raise GuardConfigError("secrets: kinds must be a list of strings")
    use_entropy = options.get("entropy", True)
    if not isinstance(use_entropy, bool):
        raise GuardConfigError("secrets: entropy must be true or false")
    return SecretsDetector(kinds=kinds, use_entropy=use_entropy)
