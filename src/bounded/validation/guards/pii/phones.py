"""Phone numbers: a cheap regex proposes phone-shaped runs and Google's ``phonenumbers``
decides (handed only the candidates, since its own matcher is slow).

A candidate that reads as a date, a decimal, a dotted quad or the SSN's 3-2-4 shape is none;
one bare run of digits needs a word nearby ("phone", "call", "tel"...); national numbers in
regions with a trunk prefix must start with it ("030 ..." in Germany).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from bounded.validation.guards.base import Finding, GuardConfigError
from bounded.validation.guards.pii.patterns import after_iban_head, glued_after, word_before

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
_DIGITS = re.compile(r"\d+")
_MORE_GROUP = re.compile(r"[ .\-/]{1,2}+\d++")
_BREAK = re.compile(r" +\(?")  # between two numbers written side by side


def _whole_run(text: str, m: re.Match[str]) -> str:
    """The candidate and the digit groups that go on after it (the pattern stops at eight)."""
    end = m.end()
    while (more := _MORE_GROUP.match(text, end)) is not None:
        after = more.end()
        if after < len(text) and (text[after].isalnum() or text[after] in "_+"):
            break  # glued to a word: no group of its own
        end = after
    return text[m.start() : end]


def _piece_ends(head: str, lengths: list[int], fits: list[bool], i: int) -> list[int]:
    """The groups a number that starts at group ``i`` (written ``head``) may end at, the
    last first. One with a "+", "(" or "0" runs on, up to 15 digits, over groups that
    ``fits`` (two or more digits, or by a bracket: "(0)8"), and one of any length after a
    country code ("+33 1 42..."); a bare NANP number is 3-3-4 or 1-3-3-4 ("12 345 678 910"
    holds none)."""
    if head.isdigit() and head[0] != "0":
        layout = [3, 3, 4] if len(head) == 3 else [1, 3, 3, 4] if head == "1" else []
        nanp = bool(layout) and lengths[i : i + len(layout)] == layout
        return [i + len(layout) - 1] if nanp else []
    ends, count = [], lengths[i]
    skip = 1 + head.startswith(("+", "00"))  # groups that may be one digit long
    for k in range(i + 1, len(lengths)):
        count += lengths[k]
        if count > 15 or (not fits[k] and k >= i + skip):
            break
        ends.append(k)
    return [e for e in reversed([i, *ends]) if sum(lengths[i : e + 1]) >= 7]


def _in_blocks(lengths: list[int]) -> list[bool]:
    """Per group, whether it is in a stretch of three or more 4-digit groups."""
    out = [False] * len(lengths)
    i = 0
    while i < len(lengths):
        j = i
        while j < len(lengths) and lengths[j] == 4:
            j += 1
        if j - i >= 3:
            out[i:j] = [True] * (j - i)
        i = max(j, i + 1)
    return out


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
        skip = 0
        for m in _PHONE.finditer(text):
            if m.start() < skip:
                continue  # in a run already read in pieces
            raw = m.group()
            if len(raw) < 7:  # most candidates: years, counts, prices
                continue
            number = _EXTENSION.sub("", raw) if raw[-1].isdigit() and _HAS_EXT.search(raw) else raw
            digits = _NON_DIGIT.sub("", number)
            if len(digits) > 15:  # numbers written side by side: read the run in pieces
                run = number if number != raw else _whole_run(text, m)
                if not after_iban_head(text, m.start()):
                    yield from self._pieces(text, m.start(), run)
                skip = m.start() + len(run)
                continue
            found = self._candidate(text, m.start(), raw, number, digits)
            if found is not None:
                yield found

    def _candidate(
        self, text: str, start: int, raw: str, number: str, digits: str
    ) -> Finding | None:
        """``raw`` at ``start`` as a phone number (``number``: without its extension)."""
        if not 7 <= len(digits) <= 15:
            return None
        if _NOT_A_PHONE.match(number) or _DATE_LIKE.match(number):
            return None
        # A bare run of digits is as often an id, a hash or a count: ask for a word.
        if number.isdigit() and not word_before(text, start, _PHONE_WORDS, 32):
            return None
        detail = self._confirm(raw, digits)
        if detail is None:
            return None
        score = 1.0 if detail == "international" else 0.9
        return Finding("phone", start, start + len(raw), score=score, detail=detail)

    def _pieces(self, text: str, start: int, run: str) -> Iterator[Finding]:
        """Phone numbers among the digit groups of a run too long to be one: from the left,
        the longest stretch of whole groups that is a number, apart from its neighbours by
        spaces. One starts at the run's start, right after a number or a block of three or
        more 4-digit groups (a card's, an IBAN's), or at a "("; none inside a block or at a
        group of zeros."""
        groups = [g.span() for g in _DIGITS.finditer(run)]
        # Where a number may start or end: at the run's ends, or where spaces part groups.
        inner = [
            _BREAK.fullmatch(run, a[1], b[0]) is not None for a, b in itertools.pairwise(groups)
        ]
        breaks = [True, *inner, True]
        if glued_after(text, start + len(run)):
            groups.pop()
            breaks.pop()
        lengths = [e - s for s, e in groups]
        blocked = _in_blocks(lengths)
        fits = [
            n > 1 or run[s - 1 : s] in ("(", ")") for (s, _), n in zip(groups, lengths, strict=True)
        ]
        i, anchored = 0, True
        while i < len(groups):
            found = None
            digits = run[groups[i][0] : groups[i][1]]
            # A number starts the run, follows one found or a block, or opens with "(".
            anchored = anchored or run[groups[i][0] - 1] == "("
            if anchored and breaks[i] and not blocked[i] and digits.strip("0"):
                found = self._piece_at(text, start, run, groups, (lengths, fits, breaks), i)
            if found is None:
                anchored = blocked[i]
                i += 1
                continue
            yield found[0]
            i, anchored = found[1] + 1, True

    def _piece_at(
        self,
        text: str,
        start: int,
        run: str,
        groups: list[tuple[int, int]],
        shape: tuple[list[int], list[bool], list[bool]],
        i: int,
    ) -> tuple[Finding, int] | None:
        """The longest number of whole groups from group ``i`` on, and its last group."""
        lengths, fits, breaks = shape
        first = 0 if i == 0 else groups[i][0] - (run[groups[i][0] - 1] == "(")
        for j in _piece_ends(run[first : groups[i][1]], lengths, fits, i):
            if breaks[j + 1]:
                piece = run[first : groups[j][1]]
                digits = _NON_DIGIT.sub("", piece)
                found = self._candidate(text, start + first, piece, piece, digits)
                if found is not None:
                    return found, j
        return None

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
