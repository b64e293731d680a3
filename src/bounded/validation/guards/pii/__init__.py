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
unspecified addresses (127.0.0.1, ::) are not reported at all. Numbers written side by side
with only spaces between ("+1 415 555 0199 4539 1488 0343 6467") make one candidate too long
to be either; its run of digit groups is then read again in pieces: cards in the layouts they
are printed in, phones as the longest stretch of whole groups that is a number, none inside
an IBAN's body or in the middle of a row of 4-digit groups. Findings that overlap are
resolved to the longest.

Options:
  ``entities``: the subset to look for (default: every pattern entity; ``person`` only when
  asked for). ``regions``: where national-format phone numbers are read (default US, GB, DE,
  FR; a number written in ``+`` or ``00`` international form is read whatever its country).
  ``phone_leniency``: ``valid`` (default: a number that could be dialled) or ``possible``
  (the right length for its region). ``person_max_chars``: how much text the name model reads
  (default 100,000; past that a ``pii_incomplete`` finding says so).

Modules: ``patterns`` (the regexes and finders but phones), ``checksums`` (the checks that
confirm them), ``phones``, ``persons`` (the opt-in names), ``detector`` (the detector, overlap
resolution, the registry's factory).
"""

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
from bounded.validation.guards.pii.detector import (
    OPT_IN_ENTITIES,
    PATTERN_ENTITIES,
    PiiDetector,
    build,
    resolve_overlaps,
)
from bounded.validation.guards.pii.patterns import Finder

__all__ = [
    "IBAN_LENGTHS",
    "OPT_IN_ENTITIES",
    "PATTERN_ENTITIES",
    "Finder",
    "PiiDetector",
    "build",
    "card_brand",
    "de_tax_id_ok",
    "es_dni_ok",
    "fr_nir_ok",
    "iban_ok",
    "luhn_ok",
    "resolve_overlaps",
    "ssn_ok",
]
