"""Phone numbers: a cheap regex proposes phone-shaped runs and Google's ``phonenumbers``
decides (handed only the candidates, since its own matcher is slow).

A candidate that reads as a date, a decimal, a dotted quad or the SSN's 3-2-4 shape is none;
one bare run of digits needs a word nearby ("phone", "call", "tel"...); national numbers in
regions with a trunk prefix must start with it ("030 ..." in Germany).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bounded.validation.guards.base import Finding, GuardConfigError
from bounded.validation.guards.pii.patterns import word_before

# A cheap net for phone-shaped runs: digit groups with the separators people write, a
# leading "+", a "(0)" or bracketed area code, an extension. phonenumbers decides.
_PHONE_LEAD = r"(?:\(\d{1,5}+\)[ .\-]{0,2}+\d{1,12}+|\d{1,15}+)"
_PHONE = re.compile(
    rf"(?:\+(?<![\w+.\-/)]\+)[ ]?{_PHONE_LEAD}"  # +44 20 ..., +46 (0)8 ...
    r"|\((?<![\w+.\-/)]\()\d{1,5}+\)[ .\-]{0,2}+\d{1,12}+"  # (415) 555-...
    r"|\d(?<![\w+.\-/)]\d)\d{0,14}+)"  # 0490 75 40 81, 4155552671
    r"(?:(?:[ .\-/]{1,2}+|[ ]?\(\d{1,4}+\)[ ]?)\d{1,12}+){0,7}"
    r"(?:[ ]?(?:ext\.?|x|\#)[ ]?\d{1,6}+)?"
    r"(?![\w+]|[.\-]\d)"
)
# 2015-12-22 (and the hour after it), 22.12.2015, 12/22/15: dates, not numbers to dial.
_DATE_LIKE = re.compile(
    r"(?:\d{4}([-./])\d{1,2}\1\d{1,2}|\d{1,2}([-./])\d{1,2}\2(?:\d{4}|\d{2}$))(?:$|[ T]\d\d?$)"
)
# A dotted quad (an address or a version), a decimal, the SSN's 3-2-4 shape.
_NOT_A_PHONE = re.compile(r"(?:\d{1,3}(?:\.\d{1,3}){3}|\+?\d+\.\d+|\d{3}-\d\d-\d{4})$")
_PHONE_WORDS = re.compile(
    r"(?i)phone|tel\b|tel[.:]|call|mobile|cell|fax|sms|whatsapp|signal|contact|ring|dial|"
    r"reach|text me|number|telefon|portable|handy|móvil|numéro"
)
_EXTENSION = re.compile(r"[ ]?(?:ext\.?|x|\#)[ ]?\d+$")
_HAS_EXT = re.compile(r"[x#]")
_NON_DIGIT = re.compile(r"\D+")


class Phones:
    """The phone finder for some regions, at a leniency (``valid`` or ``possible``)."""

    def __init__(self, regions: list[str], leniency: str) -> None:
        import phonenumbers

        self._pn = phonenumbers
        self._check = (
            phonenumbers.is_valid_number if leniency == "valid" else phonenumbers.is_possible_number
        )
        # Per region: the trunk prefix people write before a national number ("0" in most of
        # Europe; NANP's "1" is optional), and the lengths a national number may have.
        self._regions: list[tuple[str, str, frozenset[int]]] = []
        for region in regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if meta is None:
                raise GuardConfigError(f"pii: unknown phone region {region!r} (use ISO codes)")
            trunk = meta.national_prefix or ""
            desc = meta.general_desc
            lengths = frozenset(desc.possible_length or ()) if desc is not None else frozenset()
            self._regions.append((region, "" if meta.country_code == 1 else trunk, lengths))
            example = phonenumbers.example_number(region)  # loads the region's metadata now,
            if example is not None:  # not in the first request that meets a number
                phonenumbers.is_valid_number(example)

    def __call__(self, text: str) -> Iterator[Finding]:
        for m in _PHONE.finditer(text):
            raw = m.group()
            if len(raw) < 7:  # most candidates: years, counts, prices
                continue
            number = _EXTENSION.sub("", raw) if raw[-1].isdigit() and _HAS_EXT.search(raw) else raw
            digits = _NON_DIGIT.sub("", number)
            if not 7 <= len(digits) <= 15:
                continue
            if _NOT_A_PHONE.match(number) or _DATE_LIKE.match(number):
                continue
            # A bare run of digits is as often an id, a hash or a count: ask for a word.
            if number.isdigit() and not word_before(text, m.start(), _PHONE_WORDS, 32):
                continue
            detail = self._confirm(raw, digits)
            if detail is not None:
                score = 1.0 if detail == "international" else 0.9
                yield Finding("phone", m.start(), m.end(), score=score, detail=detail)

    def _confirm(self, raw: str, digits: str) -> str | None:
        if raw.startswith(("+", "00")):
            if raw.startswith("00"):
                raw = "+" + raw[2:]
            return "international" if self._parses(raw, None) else None
        for region, trunk, lengths in self._regions:
            if trunk and not digits.startswith(trunk):
                continue  # "2024 01 15" is no German number: Germans write the 0
            national = digits[len(trunk) :] if trunk else digits
            if region in ("US", "CA") and len(national) == 11 and national[0] == "1":
                national = national[1:]
            if lengths and len(national) not in lengths:
                continue
            if self._parses(raw, region):
                return region
        return None

    def _parses(self, raw: str, region: str | None) -> bool:
        try:
            return bool(self._check(self._pn.parse(raw, region)))
        except self._pn.NumberParseException:
            return False
