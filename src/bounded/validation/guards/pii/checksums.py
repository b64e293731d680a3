"""The checks that confirm a pattern's candidate: Luhn and the card networks' prefixes, ISO
13616 mod-97 and the country's length, the SSA's never-issued SSN ranges, ISO 7064 for the
Steuer-ID, the INSEE key and the DNI letter. Each takes the candidate's characters (no
separators) and says yes or no."""

from __future__ import annotations


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


# ISO 13616 lengths by country (SWIFT's IBAN registry).
_IBAN_TABLE = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 "
    "DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 "
    "IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 "
    "MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 "
    "SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
)
IBAN_LENGTHS = {entry[:2]: int(entry[2:]) for entry in _IBAN_TABLE.split(" ")}


def iban_ok(iban: str) -> bool:
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isascii() or not iban.isalnum():
        return False
    return int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


_NEVER_ISSUED_SSN = {"078051120", "219099999", "123456789"}


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _NEVER_ISSUED_SSN


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


def fr_nir_ok(groups: tuple[str, ...]) -> bool:
    """INSEE number: the key is 97 minus the first 13 digits mod 97 (Corsica's 2A/2B count
    as 19/18)."""
    *head, key = groups
    head[3] = {"2A": "19", "2B": "18"}.get(head[3].upper(), head[3])
    return 97 - int("".join(head)) % 97 == int(key)


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_dni_ok(number: str, letter: str) -> bool:
    """DNI and NIE: the letter is the number mod 23 (an NIE's X, Y, Z read as 0, 1, 2)."""
    number = number.upper()
    number = str("XYZ".index(number[0])) + number[1:] if number[0] in "XYZ" else number
    return _DNI_LETTERS[int(number) % 23] == letter.upper()
