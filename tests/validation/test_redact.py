"""Redaction and restore: placeholders by kind, one per value, overlaps merged, a literal
placeholder in the text never confused with ours, and streaming restore at every split."""

from __future__ import annotations

import copy
import pickle

import pytest

from bounded.validation.guards import registry
from bounded.validation.guards.base import Finding, ScanContext
from bounded.validation.guards.redact import (
    PLACEHOLDER,
    Restorer,
    Vault,
    label,
    merge_spans,
    redact,
    restore,
)

CTX = ScanContext()
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def scan_all(text: str) -> list[Finding]:
    return [*registry.build("pii").scan(text, CTX), *registry.build("secrets").scan(text, CTX)]


def test_redact_and_restore_round_trip_with_real_detectors() -> None:
    text = (
        f"I'm ana@example.com, call (415) 555-2671 or +44 20 7946 0958. Again: ana@example.com. "
        f"Card 4111 1111 1111 1111, and my token is {TOKEN}."
    )
    vault = Vault()
    redacted = redact(text, scan_all(text), vault)
    assert redacted == (
        "I'm <EMAIL_1>, call <PHONE_1> or <PHONE_2>. Again: <EMAIL_1>. "
        "Card <CREDIT_CARD_1>, and my token is <GITHUB_TOKEN_1>."
    )
    for value in ("ana@example.com", "555-2671", "7946", "4111", TOKEN):
        assert value not in redacted
    assert restore(redacted, vault) == text
    answer = "Sure <EMAIL_1>, I'll ring <PHONE_2> and never show <GITHUB_TOKEN_1>."
    assert restore(answer, vault) == (
        f"Sure ana@example.com, I'll ring +44 20 7946 0958 and never show {TOKEN}."
    )


def test_one_vault_across_the_messages_of_a_request() -> None:
    vault = Vault()
    first = redact("from bob@example.com", [Finding("email", 5, 20)], vault)
    second = redact(
        "cc bob@example.com and eve@example.com",
        scan_all("cc bob@example.com and eve@example.com"),
        vault,
    )
    assert (first, second) == ("from <EMAIL_1>", "cc <EMAIL_1> and <EMAIL_2>")
    assert len(vault) == 2


def test_overlapping_findings_merge_into_their_union_named_after_the_longest() -> None:
    text = "0123456789abcdefghij"
    findings = [Finding("phone", 2, 8), Finding("credit_card", 4, 16), Finding("email", 15, 18)]
    assert merge_spans(findings, len(text)) == [(2, 18, "credit_card")]
    vault = Vault()
    assert redact(text, findings, vault) == "01<CREDIT_CARD_1>ij"
    assert restore("01<CREDIT_CARD_1>ij", vault) == text


def test_whole_text_and_out_of_range_findings_have_no_span() -> None:
    vault = Vault()
    findings = [Finding("injection", 0, 0, 0.9), Finding("email", 3, 99)]
    assert redact("hi ana@x.example", findings, vault) == "hi <EMAIL_1>"
    assert vault.value_of("<EMAIL_1>") == "ana@x.example"


def test_a_literal_placeholder_in_the_text_is_never_taken_for_ours() -> None:
    text = "Template: Dear <EMAIL_1>, reply to ops@example.com"
    vault = Vault()
    redacted = redact(text, scan_all(text), vault)
    assert redacted == "Template: Dear <EMAIL_1>, reply to <EMAIL_2>"
    assert restore(redacted, vault) == text


def test_unknown_and_malformed_placeholders_stay_as_they_are() -> None:
    vault = Vault()
    redact("ana@example.com", [Finding("email", 0, 15)], vault)
    text = "<EMAIL_1> <EMAIL_9> <email_1> <EMAIL_> <EMAIL_01> < EMAIL_1> <EMAIL_1 >"
    assert restore(text, vault) == (
        "ana@example.com <EMAIL_9> <email_1> <EMAIL_> <EMAIL_01> < EMAIL_1> <EMAIL_1 >"
    )


def test_labels_are_placeholder_safe() -> None:
    assert label("github_token") == "GITHUB_TOKEN"
    assert label("aws-access key") == "AWS_ACCESS_KEY"
    assert label("") == "SECRET"
    assert label("2fa code") == "SECRET_2FA_CODE"
    for kind in ("email", "us_ssn", "high_entropy_string", "x" * 80, "é!"):
        vault = Vault()
        assert PLACEHOLDER.fullmatch(vault.placeholder_for(kind, "v"))


def test_the_vault_never_shows_or_stores_its_values() -> None:
    vault = Vault()
    vault.placeholder_for("password", "hunter2-Secret!")
    assert "hunter2" not in repr(vault) and "hunter2" not in str(vault)
    with pytest.raises(TypeError):
        pickle.dumps(vault)
    with pytest.raises(TypeError):
        copy.deepcopy(vault)
    vault.clear()
    assert len(vault) == 0 and vault.value_of("<PASSWORD_1>") is None


@pytest.fixture
def vault() -> Vault:
    vault = Vault()
    redact(
        "ana@example.com and " + TOKEN,
        [Finding("email", 0, 15), Finding("github_token", 20, 20 + len(TOKEN))],
        vault,
    )
    return vault


def stream(restorer: Restorer, chunks: list[str]) -> list[str]:
    return [restorer.feed(c) for c in chunks] + [restorer.flush()]


@pytest.mark.parametrize(
    "answer",
    [
        "Mail <EMAIL_1> now.",
        "<EMAIL_1>",
        "a<GITHUB_TOKEN_1><EMAIL_1>b",
        "x < y and <EMAIL_1> <b>bold</b> <EMA <EMAIL_1",
    ],
)
def test_streaming_restore_at_every_split_point(vault: Vault, answer: str) -> None:
    expected = restore(answer, vault)
    assert "ana@example.com" in expected
    for i in range(len(answer) + 1):
        for j in range(i, len(answer) + 1):
            chunks = [answer[:i], answer[i:j], answer[j:]]
            assert "".join(stream(Restorer(vault), chunks)) == expected, chunks


def test_streaming_one_character_at_a_time(vault: Vault) -> None:
    answer = "Hi <EMAIL_1>, your key <GITHUB_TOKEN_1> is revoked; 3 < 4 > 2."
    assert "".join(stream(Restorer(vault), list(answer))) == restore(answer, vault)


def test_streaming_holds_back_only_a_possible_placeholder(vault: Vault) -> None:
    restorer = Restorer(vault)
    assert restorer.feed("a < b and <div class=x>") == "a < b and <div class=x>"
    assert restorer.feed("see <") == "see "  # could be <EMAIL_1>
    assert restorer.feed("EMA") == ""
    assert restorer.feed("IL_1> ok") == "ana@example.com ok"
    assert restorer.feed("<EMAIL_2") == "<EMAIL_2"  # not one of this vault's
    assert restorer.feed("<EMAIL_1") == ""
    assert restorer.flush() == "<EMAIL_1"  # the stream ended mid-way: give it back as it was
    assert restorer.flush() == ""


def test_streaming_with_an_empty_vault_passes_everything_through() -> None:
    restorer = Restorer(Vault())
    assert restorer.feed("<EMA") == "<EMA"
    assert restorer.feed("IL_1>") == "IL_1>"
