"""The pattern entities but phones: a regex that proposes candidates, a check that confirms
them (:mod:`.checksums`), and where a shape alone is too common, a word asked for nearby.

Each finder takes the text and yields its findings; :data:`FINDERS` names them. The regexes
are written so no input makes them backtrack more than a bounded amount (possessive digit
runs, look-behinds that only start at the start of a token), so a scan is linear in the text.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

from bounded.validation.guards.base import Finding
from bounded.validation.guards.pii.checksums import (
    IBAN_LENGTHS,
    card_brand,
    de_tax_id_ok,
    es_dni_ok,
    fr_nir_ok,
    iban_ok,
    luhn_ok,
    ssn_ok,
)

Finder = Callable[[str], Iterator[Finding]]


def glued_after(text: str, end: int) -> bool:
    """Whether the digits that end at ``end`` go on into a word, a decimal or an identifier
    ("...6467abc", "...6467.5", "...5891-f593"): the last group is then no group of its own."""
    after = text[end : end + 2]
    return bool(after) and (
        after[0].isalnum() or after[0] == "_" or (after[0] in ".,-/" and after[1:].isalnum())
    )


# "FR53 0027 6058 9226 ...", "GB82 WEST 1234 ...": digit groups that go on from an IBAN's
# head are its body, not numbers of their own.
_IBAN_HEAD_BEFORE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d\d (?:[A-Za-z0-9]{4} ){0,8}$")


def after_iban_head(text: str, start: int) -> bool:
    """Whether the digits at ``start`` go on from an IBAN's country and check digits."""
    return _IBAN_HEAD_BEFORE.search(text, max(0, start - 48), start) is not None


def word_before(text: str, start: int, words: re.Pattern[str], width: int = 48) -> bool:
    """Whether one of ``words`` appears in the ``width`` characters before ``start``."""
    return words.search(text, max(0, start - width), start) is not None


# ----- email ----------------------------------------------------------------------------

# Found from the "@" (decorators and handles fail at once on the domain), then the local
# part is read backwards: at most 64 characters, so no input makes it slow.
_EMAIL_DOMAIN = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}+)\.){1,8}[A-Za-z]{2,24}+(?![\w\-])"
)
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")


def emails(text: str) -> Iterator[Finding]:
    if "@" not in text:
        return
    for m in _EMAIL_DOMAIN.finditer(text):
        left = m.start()
        while left > 0 and m.start() - left < 64 and text[left - 1] in _LOCAL_CHARS:
            left -= 1
        if left > 0 and text[left - 1] in _LOCAL_CHARS:
            continue  # a local part longer than 64 characters: no address
        start = left
        while start < m.start() and not text[start].isalnum():
            start += 1  # a local part starts with a letter or digit ("-john@" in a list)
        if start == m.start():
            continue
        yield Finding("email", start, m.end())


# ----- payment cards --------------------------------------------------------------------

_CARD = re.compile(r"\d(?<![\w.,\-]\d)(?:[ \-]?\d){11,18}(?![\w]|[.,\-]\d)")
_CARD_WORDS = re.compile(
    r"(?i)card|\bcc\b|visa|master|amex|maestro|credit|debit|payment|karte|carte|tarjeta"
)


# Numbers written side by side merge into one candidate (``+1 415 555 0199 4539 1488 0343
# 6467``) that is no card as a whole; the run of digit groups around it is read again for
# the layouts cards are printed in, the common first: 4-4-4-4, Amex's 4-6-5, 4-4-4-4-3,
# Diners' 4-6-4.
_MORE_GROUP = re.compile(r"[ \-]\d++")
_GROUP = re.compile(r"\d+")
_NON_DIGIT = re.compile(r"\D+")
_CARD_LAYOUTS = ((4, 4, 4, 4), (4, 6, 5), (4, 4, 4, 4, 3), (4, 6, 4))


def cards(text: str) -> Iterator[Finding]:
    failed: list[re.Match[str]] = []
    seen: set[tuple[int, int]] = set()
    for m in _CARD.finditer(text):
        found = _whole_card(text, m)
        if found is None:
            failed.append(m)
        else:
            seen.add((found.start, found.end))
            yield found
    done = 0
    for m in failed:
        if m.start() < done:
            continue  # in a run already read
        start, done = _run_around(text, m.start(), m.end())
        for found in _cards_in_run(text, start, done):
            if (found.start, found.end) not in seen:
                yield found


def _whole_card(text: str, m: re.Match[str]) -> Finding | None:
    raw = m.group()
    groups = re.split(r"[ \-]", raw)
    if len(groups) > 1 and (
        len({c for c in raw if not c.isdigit()}) > 1
        or len(groups[0]) != 4
        or any(not 3 <= len(g) <= 6 for g in groups[1:-1])
    ):
        return None
    digits = "".join(groups)
    brand = card_brand(digits)
    if brand is None or not luhn_ok(digits):
        return None
    # 12 to 14 digits collide with order and account numbers: ask for a word like "card".
    if len(digits) < 15 and not word_before(text, m.start(), _CARD_WORDS):
        return None
    return Finding("credit_card", m.start(), m.end(), detail=brand)


def _run_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The run of digit groups, joined by single spaces or dashes, that holds text[start:end]."""
    while (more := _MORE_GROUP.match(text, end)) is not None:
        end = more.end()
    while start > 1 and text[start - 1] in " -" and text[start - 2].isdecimal():
        start -= 2
        while start > 0 and text[start - 1].isdecimal():
            start -= 1
    return start, end


def _cards_in_run(text: str, start: int, end: int) -> Iterator[Finding]:
    """Cards in a run of digit groups, apart from their neighbours by a space: at each group,
    the layouts that fit, confirmed as a whole candidate is."""
    groups = [g.span() for g in _GROUP.finditer(text, start, end)]
    if groups and start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_.,-"):
        groups.pop(0)  # the first group goes on from a word or a decimal
    if groups and glued_after(text, end):
        groups.pop()
    if not groups or after_iban_head(text, groups[0][0]):
        return
    lengths = [e - s for s, e in groups]
    i = 0
    while i < len(groups):
        found = _card_at(text, (start, end), groups, lengths, i) if lengths[i] == 4 else None
        if found is None:
            i += 1
            continue
        yield found[0]
        i += found[1]


def _card_at(
    text: str, run: tuple[int, int], groups: list[tuple[int, int]], lengths: list[int], i: int
) -> tuple[Finding, int] | None:
    """The card that starts at group ``i`` of the run, and how many groups it takes."""
    if groups[i][0] > run[0] and text[groups[i][0] - 1] != " ":
        return None
    for layout in _CARD_LAYOUTS:
        n = len(layout)
        if tuple(lengths[i : i + n]) != layout:
            continue
        if (
            layout == (4, 4, 4, 4)
            and i > 0
            and lengths[i - 1] == 4
            and lengths[i + 4 : i + 5] == [4]
        ):
            continue  # mid-row of 4-digit groups: a card could start at any of them
        start, end = groups[i][0], groups[i + n - 1][1]
        raw = text[start:end]
        if len({c for c in raw if not c.isdigit()}) > 1 or (end < run[1] and text[end] != " "):
            continue  # one separator throughout, and a space to the next group
        digits = _NON_DIGIT.sub("", raw)
        brand = card_brand(digits)
        if brand is None or not luhn_ok(digits):
            continue
        if len(digits) < 15 and not word_before(text, start, _CARD_WORDS):
            continue
        return Finding("credit_card", start, end, detail=brand), n
    return None


# ----- IBAN -----------------------------------------------------------------------------

# Found from its check digits (rarer in text than letters), then read from two letters back.
_IBAN = re.compile(r"\d\d(?<=(?<![A-Za-z0-9])[A-Za-z]{2}\d\d)(?:[ ]?[A-Za-z0-9]){11,30}+")


def ibans(text: str) -> Iterator[Finding]:
    pos = 0
    while (m := _IBAN.search(text, pos)) is not None:
        pos, start = m.start() + 1, m.start() - 2
        raw = text[start : m.end()]
        length = IBAN_LENGTHS.get(raw[:2].upper())
        if length is None:
            continue
        # The pattern runs on into what follows; take exactly the country's length.
        chars = end = 0
        while end < len(raw) and chars < length:
            chars += raw[end].isalnum()
            end += 1
        stop = start + end
        if chars != length or (stop < len(text) and text[stop].isalnum()):
            continue
        if iban_ok(raw[:end].replace(" ", "")):
            yield Finding("iban", start, stop, detail=raw[:2].upper())
            pos = stop


# ----- IP addresses ---------------------------------------------------------------------

# "version 7.1.4.34", "section 8.2.4.44": dotted numbers that are not addresses.
_NOT_IP_WORDS = re.compile(r"(?i)version|release|build|section|chapter|§|\brfc|\bstep|\brule")
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w]|\.\d)")
# IPv6 is found from two colons with at most four hex digits between (re skips to a colon),
# then read from the hex digits before them.
_COLON_PAIR = re.compile(r":[0-9A-Fa-f]{0,4}:")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")
_IPV6 = re.compile(r"[0-9A-Fa-f:]{2,39}+(?![\w:]|\.\w)")


def _ip_finding(
    m: re.Match[str], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> Finding | None:
    """Loopback and unspecified addresses (127.0.0.1, 0.0.0.0, ::) say nothing about anyone."""
    if address.is_loopback or address.is_unspecified:
        return None
    scope = "private" if address.is_private else "global" if address.is_global else "reserved"
    return Finding("ip_address", m.start(), m.end(), detail=f"v{address.version} {scope}")


def ips(text: str) -> Iterator[Finding]:
    if "." in text:
        for m in _IPV4.finditer(text):
            if word_before(text, m.start(), _NOT_IP_WORDS, 16):
                continue
            try:
                v4 = ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            if (found := _ip_finding(m, v4)) is not None:
                yield found
    if ":" not in text:
        return
    pos = 0
    while (pair := _COLON_PAIR.search(text, pos)) is not None:
        start = pair.start()
        while start > 0 and pair.start() - start < 4 and text[start - 1] in _HEX_CHARS:
            start -= 1
        pos = pair.end()
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in ":._"):
            continue
        run = _IPV6.match(text, start)
        if run is None:
            continue
        pos = run.end()
        raw = run.group()
        # "a::b", "1::2" (a slice) and "::1" are too often code; ask for three groups.
        if sum(1 for g in raw.split(":") if g) < 3:
            continue
        try:
            v6 = ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        if (found := _ip_finding(run, v6)) is not None:
            yield found


# ----- national ids ---------------------------------------------------------------------

# Each pattern starts with a character class and looks behind only after it: re skips
# ahead to that class, where a leading look-behind would be tried at every position.
_SSN = re.compile(r"(\d(?<![\w\-]\d)\d\d)([- ])(\d{2})\2(\d{4})(?![\w]|-\d)")
_SSN_BARE = re.compile(r"(\d(?<![\w\-]\d)\d\d)(\d{2})(\d{4})(?![\w]|-\d)")
_SSN_WORDS = re.compile(r"(?i)\bssn|social security|\bss#")
_SSN_GATE = ("ssn", "social security", "ss#")


def ssns(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        if ssn_ok(m.group(1), m.group(3), m.group(4)):
            yield Finding("us_ssn", m.start(), m.end())
    lower = text.lower()
    if not any(word in lower for word in _SSN_GATE):
        return
    for m in _SSN_BARE.finditer(text):  # nine bare digits only next to "SSN"
        if ssn_ok(*m.groups()) and word_before(text, m.start(), _SSN_WORDS, 32):
            yield Finding("us_ssn", m.start(), m.end(), score=0.8, detail="unformatted")


_NINO = re.compile(
    r"[A-CEGHJ-PR-TW-Z](?<![A-Za-z0-9].)[A-CEGHJ-NPR-TW-Z]"
    r"( ?)\d{2}\1\d{2}\1\d{2}\1[A-D](?![A-Za-z0-9])"
)
_NINO_NEVER = ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ")


def ninos(text: str) -> Iterator[Finding]:
    for m in _NINO.finditer(text):  # no check digit exists: the format alone
        if not m.group().startswith(_NINO_NEVER):
            yield Finding("uk_nino", m.start(), m.end(), score=0.8)


_DE_TAX = re.compile(r"[1-9](?<![\w.,\-].)\d( ?)\d{3}\1\d{3}\1\d{3}(?![\w]|[.,\-]\d)")


def de_tax_ids(text: str) -> Iterator[Finding]:
    for m in _DE_TAX.finditer(text):
        if de_tax_id_ok(m.group().replace(" ", "")):
            yield Finding("de_tax_id", m.start(), m.end(), score=0.9)


_FR_NIR = re.compile(
    r"([12])(?<!\w.) ?(\d{2}) ?(0[1-9]|1[0-2]|[2-9]\d) ?(\d{2}|2[AaBb]) ?(\d{3}) ?(\d{3})"
    r" ?(\d{2})(?![\w])"
)


def fr_nirs(text: str) -> Iterator[Finding]:
    for m in _FR_NIR.finditer(text):
        if fr_nir_ok(m.groups()):
            yield Finding("fr_nir", m.start(), m.end())


_ES_DNI = re.compile(r"([XYZxyz0-9](?<![\w.].)\d{7})-?([A-Za-z])(?![\w]|[+\-]\d)")


def es_dnis(text: str) -> Iterator[Finding]:
    for m in _ES_DNI.finditer(text):
        if es_dni_ok(m.group(1), m.group(2)):
            kind = "nie" if m.group(1)[0] in "XYZxyz" else "dni"
            yield Finding("es_dni", m.start(), m.end(), detail=kind)


FINDERS: dict[str, Finder] = {
    "email": emails,
    "credit_card": cards,
    "iban": ibans,
    "ip_address": ips,
    "us_ssn": ssns,
    "uk_nino": ninos,
    "de_tax_id": de_tax_ids,
    "fr_nir": fr_nirs,
    "es_dni": es_dnis,
}
