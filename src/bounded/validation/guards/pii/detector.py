"""The ``pii`` detector: the chosen entities' finders over a text, their findings' overlaps
resolved to the longest, and the registry's factory."""

from __future__ import annotations

import bisect
import re
from typing import Any

from bounded.validation.guards.base import Finding, GuardConfigError, ScanContext
from bounded.validation.guards.pii.patterns import FINDERS, Finder
from bounded.validation.guards.pii.persons import Persons
from bounded.validation.guards.pii.phones import Phones

PATTERN_ENTITIES = (
    "email",
    "phone",
    "credit_card",
    "iban",
    "ip_address",
    "us_ssn",
    "uk_nino",
    "de_tax_id",
    "fr_nir",
    "es_dni",
)
OPT_IN_ENTITIES = ("person",)
# Every finder but these matches a decimal digit (``\d``, as its pattern spells it): a text
# with none skips them, which is most short chat turns. Email needs "@", an IPv6 address
# may be hex letters and colons only, and a name needs no digit.
_NO_DIGIT_NEEDED = frozenset(("email", "ip_address", "person"))
_DIGIT = re.compile(r"\d")
# When two findings overlap, the longer wins; on equal length, the earlier in this order.
_PRIORITY = {name: rank for rank, name in enumerate((*PATTERN_ENTITIES[2:], "email", "phone"))}


def resolve_overlaps(
    findings: list[Finding], priority: dict[str, int], tiers: dict[str, int] | None = None
) -> list[Finding]:
    """Of findings that overlap, keep the one in the lowest tier (all in tier 0 unless
    ``tiers`` says otherwise), then the longest, then the higher priority; by start."""
    tier = tiers or {}
    ranked = sorted(
        findings,
        key=lambda f: (tier.get(f.kind, 0), f.start - f.end, priority.get(f.kind, 99), f.start),
    )
    kept: list[Finding] = []
    taken: list[tuple[int, int]] = []  # disjoint, sorted by start
    for f in ranked:
        i = bisect.bisect_left(taken, (f.start, f.end))
        if (i > 0 and taken[i - 1][1] > f.start) or (i < len(taken) and taken[i][0] < f.end):
            continue
        taken.insert(i, (f.start, f.end))
        kept.append(f)
    return sorted(kept, key=lambda f: (f.start, f.end))


class PiiDetector:
    """Finds PII by pattern and checksum; thread-safe, stateless between scans."""

    kind = "pii"

    def __init__(
        self,
        entities: list[str] | None = None,
        regions: list[str] | None = None,
        phone_leniency: str = "valid",
        person_max_chars: int = 100_000,
    ) -> None:
        chosen = list(PATTERN_ENTITIES) if entities is None else list(entities)
        known = (*PATTERN_ENTITIES, *OPT_IN_ENTITIES)
        unknown = [e for e in chosen if e not in known]
        if unknown or not chosen:
            raise GuardConfigError(
                f"pii: entities must be a non-empty subset of {', '.join(known)}; "
                f"got {unknown or chosen}"
            )
        if phone_leniency not in ("valid", "possible"):
            raise GuardConfigError("pii: phone_leniency is 'valid' or 'possible'")
        self.entities = tuple(chosen)
        self._finders: list[tuple[str, Finder]] = [
            (name, FINDERS[name]) for name in chosen if name in FINDERS
        ]
        if "phone" in chosen:
            phone_regions = ["US", "GB", "DE", "FR"] if regions is None else list(regions)
            self._finders.append(("phone", Phones(phone_regions, phone_leniency)))
        if "person" in chosen:
            self._finders.append(("person", Persons(person_max_chars)))
        self._without_digits = [(n, f) for n, f in self._finders if n in _NO_DIGIT_NEEDED]

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        findings: list[Finding] = []
        finders = self._finders if _DIGIT.search(text) else self._without_digits
        for name, finder in finders:
            try:
                findings.extend(finder(text))
            except Exception as exc:  # a detector never raises on odd text; it says so
                detail = f"{name}: scan stopped ({type(exc).__name__})"
                findings.append(Finding("pii_incomplete", 0, 0, 0.0, detail=detail))
        return resolve_overlaps(findings, _PRIORITY)


def build(options: dict[str, Any]) -> PiiDetector:
    """The registry's factory: ``pii`` with options from bounded.yaml."""
    allowed = {"entities", "regions", "phone_leniency", "person_max_chars"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise GuardConfigError(f"pii: unknown options {unknown}; known: {sorted(allowed)}")
    entities = options.get("entities")
    regions = options.get("regions")
    for name, value in (("entities", entities), ("regions", regions)):
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise GuardConfigError(f"pii: {name} must be a list of strings")
    max_chars = options.get("person_max_chars", 100_000)
    if not isinstance(max_chars, int) or max_chars < 1:
        raise GuardConfigError("pii: person_max_chars must be a positive integer")
    return PiiDetector(
        entities=entities,
        regions=[r.upper() for r in regions] if regions is not None else None,
        phone_leniency=str(options.get("phone_leniency", "valid")),
        person_max_chars=max_chars,
    )
