"""Secrets: API keys and tokens in known formats, private keys, passwords in URLs and
assignments, and long random-looking tokens.

    detector = registry.build("secrets", {})
    detector.scan("export GITHUB_TOKEN=ghp_" + "a" * 36, ScanContext())
    # [Finding(kind='github_token', start=20, end=60, score=1.0, detail='GitHub token (ghp_)')]

Each format is a rule: a regex (its repetitions bounded and possessive, so no input makes it
backtrack or rescan more than a few hundred characters from any start), the lowercase
keywords one of which must be in the text for the regex to run at all (most text has none,
so most rules cost one substring search), and an optional check (a JWT's header must decode
to JSON with ``alg``). ``Finding.kind`` names the format; ``detail`` says what it is and
never holds any of the value.

The entropy check flags a token of 24 to 1,024 characters from the base64/base64url alphabet
with upper case, lower case and at least two digits, whose Shannon entropy per character is
at least what 99% of uniformly random base62 strings of its length reach (3.9 bits at 24
characters, 4.5 at 40, 4.9 at 64), and less than 40% of which is runs of four or more
letters of one case (words glued into identifiers). About 94% of random tokens of 24-100
characters pass all that. Hex is never enough (at most 4 bits a character), so git hashes,
checksums and UUIDs are not flagged; nor are identifiers, paths, ``data:...;base64,``
payloads, SRI hashes, SSH public keys and PEM certificates, or blobs over 1,024 characters.
Hex secrets are found only beside a name (``api_key = <hex>``).

Options: ``kinds`` (the subset of kinds to report; default all) and ``entropy`` (default
true: the entropy check on top of the formats).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bounded.validation.guards.base import Finding, GuardConfigError, ScanContext
from bounded.validation.guards.pii import resolve_overlaps


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    detail: str
    pattern: re.Pattern[str]
    keywords: tuple[str, ...]  # lowercase; the rule runs only if one is in the text
    group: int = 0  # the part of the match that is the secret
    check: Callable[[str], bool] | None = None
    score: float = 1.0


_TOKEN_CHARS = r"A-Za-z0-9_\-"


def _jwt_ok(token: str) -> bool:
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError too
        return False
    return isinstance(header, dict) and "alg" in header


def _mixed(token: str) -> bool:
    """Upper, lower and a digit: a key, not a word with dashes."""
    return (
        any(c.isdigit() for c in token)
        and any(c.isupper() for c in token)
        and any(c.islower() for c in token)
    )


def _rule(
    kind: str,
    detail: str,
    pattern: str,
    keywords: tuple[str, ...],
    *,
    group: int = 0,
    check: Callable[[str], bool] | None = None,
    score: float = 1.0,
) -> Rule:
    return Rule(kind, detail, re.compile(pattern), keywords, group, check, score)


# ----- assignments: password = ..., api_key: ... ----------------------------------------

# A name (found in the lowercased text: one case-sensitive scan, not an IGNORECASE one,
# which re cannot skip through), then, in the text, the rest of the name and the value.
_NAME_HIT = re.compile(r"p(?:ass(?:word|wd|phrase)?|wd)|secret|key|token")
_ASSIGN_TAIL = re.compile(
    r"([A-Za-z0-9_\-]{0,24})[\"']?\s{0,3}(?::=|=>|=|:)\s{0,3}"
    r"(?:([\"'`])([^\"'`\n]{6,256}?)\2|([^\s\"'`,;<>&]{6,256}))"
)
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_KEY_NAMES = ("api", "access", "private", "secret", "auth", "client", "signing", "encrypt")
_NOT_SECRET_NAME = re.compile(r"(?i)hash|policy|length|len$|file|path|url|type|name|field|reset")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$\{?\w+\}?|<[^>]*>|\*+|x+|\.+|%\(?\w*\)?s|\{\{.*\}\}|(?:none|null|nil|true|false|"
    r"undefined|changeme|change_me|secret|password|passwd|pass|pwd|pw|example|redacted|hidden|"
    r"dummy|test|your[_\-]?\w*|my[_\-]?(?:pass\w*|secret\w*|key|token|api\w*)|str|string|int|bool)"
    r"\W*)$"
)
_CODE_LIKE = re.compile(
    r"[()\[\]{}$]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$|^(?:self|this|os|env)\."
    r"|^[a-z]+(?:_[a-z]+)+$|^[a-z]+(?:[A-Z][a-z]+)+$"  # identifiers: pass_through, getToken
)


def _char_classes(value: str) -> int:
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def _not_placeholder(value: str) -> bool:
    return _PLACEHOLDER.match(value) is None


def _lowered(text: str) -> str:
    """``text.lower()`` with the same offsets ("İ" alone lowers to two characters)."""
    lower = text.lower()
    if len(lower) != len(text):
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return lower


def _assigned(text: str, lower: str) -> Iterator[Finding]:
    pos = 0
    while (hit := _NAME_HIT.search(lower, pos)) is not None:
        pos = hit.end()
        tail = _ASSIGN_TAIL.match(text, hit.end())
        if tail is None or tail.group(1)[:1].islower():
            continue  # no assignment; or "passing", "tokens", "keyboard", "secretary"
        pos = tail.end()  # a value is no name: "password=password=..." stays linear
        start = hit.start()
        while start > 0 and hit.start() - start < 40 and text[start - 1] in _NAME_CHARS:
            start -= 1
        if start < hit.start() and text[hit.start() - 1].isalpha() and text[hit.start()].islower():
            continue  # "bypass", "monkey" (camelCase "dbPassword" counts)
        name = text[start : tail.end(1)]
        word = hit.group()
        if word == "key" and not any(k in name.lower() for k in _KEY_NAMES):
            continue  # key = "user_id" is a dict key
        group = 3 if tail.group(3) is not None else 4
        value = tail.group(group)
        if _NOT_SECRET_NAME.search(name) or _PLACEHOLDER.match(value) or _CODE_LIKE.search(value):
            continue
        detail = f"assigned to {name[:40]}"
        if word.startswith("p"):
            if len(value) >= 8 and _char_classes(value) >= 2 and entropy(value) >= 2.5:
                yield Finding("password", *tail.span(group), 0.8, detail)
        elif len(value) >= 16 and entropy(value) >= 3.0 and any(c.isdigit() for c in value):
            yield Finding("generic_secret", *tail.span(group), 0.8, detail)


_END = rf"(?![{_TOKEN_CHARS}])"
RULES: tuple[Rule, ...] = (
    _rule(
        "private_key",
        "PEM private key block",
        r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----",
        ("private key",),
    ),
    _rule(
        "aws_access_key_id",
        "AWS access key id",
        r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}(?![A-Za-z0-9])",
        ("akia", "asia", "abia", "acca", "a3t"),
    ),
    _rule(
        "aws_secret_access_key",
        "AWS secret access key (named)",
        r"(?i:aws.{0,20}?secret|secret.?access.?key)[\w\"' ]{0,20}?[=:>]\s{0,3}[\"']?"
        r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        ("secret",),
        group=1,
    ),
    _rule("gcp_api_key", "Google API key", rf"AIza[{_TOKEN_CHARS}]{{35}}{_END}", ("aiza",)),
    _rule(
        "azure_storage_key",
        "Azure storage account key",
        r"(?i:AccountKey)=([A-Za-z0-9+/]{40,1024}+={0,2})",
        ("accountkey",),
        group=1,
    ),
    _rule(
        "azure_connection_string",
        "Azure shared access key",
        r"(?i:SharedAccessKey)=([A-Za-z0-9+/]{20,512}+={0,2})",
        ("sharedaccesskey",),
        group=1,
    ),
    _rule(
        "azure_sas_token",
        "Azure SAS signature",
        r"[?&]sig=([A-Za-z0-9%+/]{20,512}+(?:%3D|=){0,2})",
        ("sig=",),
        group=1,
    ),
    _rule(
        "github_token",
        "GitHub token",
        r"(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})(?![A-Za-z0-9_])",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _rule(
        "gitlab_token",
        "GitLab token",
        rf"gl(?:pat|ptt|dt|rt|cbt|soat|ft|imt|oas)-[{_TOKEN_CHARS}]{{20,256}}+{_END}",
        ("glpat-", "glptt-", "gldt-", "glrt-", "glcbt-", "glsoat-", "glft-", "glimt-", "gloas-"),
    ),
    _rule(
        "slack_token",
        "Slack token",
        r"(?:xox[abposre]|xapp)-[0-9A-Za-z\-]{10,250}+(?![0-9A-Za-z\-])",
        ("xox", "xapp-"),
    ),
    _rule(
        "slack_webhook",
        "Slack webhook URL",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{20,256}+",
        ("hooks.slack.com",),
    ),
    _rule(
        "stripe_key",
        "Stripe secret or restricted key",
        r"(?:sk|rk)_live_[0-9A-Za-z]{16,256}+(?![0-9A-Za-z])",
        ("_live_",),
    ),
    _rule(
        "stripe_key",
        "Stripe test-mode key",
        r"(?:sk|rk)_test_[0-9A-Za-z]{16,256}+(?![0-9A-Za-z])",
        ("_test_",),
        score=0.5,
    ),
    _rule(
        "stripe_webhook_secret",
        "Stripe webhook signing secret",
        r"whsec_[A-Za-z0-9]{32,256}+",
        ("whsec_",),
    ),
    _rule(
        "anthropic_key",
        "Anthropic API key",
        rf"sk-ant-[{_TOKEN_CHARS}]{{32,512}}+{_END}",
        ("sk-ant-",),
    ),
    _rule(
        "openai_key",
        "OpenAI API key",
        rf"sk-(?:(?:proj|svcacct|admin)-[{_TOKEN_CHARS}]{{20,512}}+"
        rf"|[A-Za-z0-9]{{20}}T3BlbkFJ[A-Za-z0-9]{{20}}){_END}",
        ("sk-",),
    ),
    _rule(
        "api_key",
        "sk- style API key",
        rf"sk-(?!ant-|proj-|svcacct-|admin-)[A-Za-z0-9]{{32,256}}+{_END}",
        ("sk-",),
        check=_mixed,
        score=0.8,
    ),
    _rule("huggingface_token", "Hugging Face token", r"hf_[A-Za-z]{34}(?![A-Za-z0-9])", ("hf_",)),
    _rule("npm_token", "npm token", r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])", ("npm_",)),
    _rule(
        "pypi_token",
        "PyPI upload token",
        rf"pypi-AgEIcHlwaS5vcmc[{_TOKEN_CHARS}]{{50,1024}}+",
        ("pypi-ageichlwas5vcmc",),
    ),
    _rule(
        "jwt",
        "JSON Web Token",
        rf"e(?<![{_TOKEN_CHARS}]e)yJ[{_TOKEN_CHARS}]{{10,4096}}+\.[{_TOKEN_CHARS}]{{10,8192}}+\.[{_TOKEN_CHARS}]{{0,4096}}+{_END}",
        ("eyj",),
        check=_jwt_ok,
    ),
    _rule(
        "url_password",
        "password in a URL",
        r"://[^\s:/@\"'<>]{1,128}:([^\s/@\"'<>]{1,256})@[A-Za-z0-9\[]",
        ("://",),
        group=1,
        check=_not_placeholder,
    ),
)
# Longest finding wins an overlap; on equal spans the more specific rule (earlier here).
_PRIORITY = {rule.kind: rank for rank, rule in reversed(list(enumerate(RULES)))}
# A known format beats a named value, which beats mere randomness, however long each is.
_TIERS = {"password": 1, "generic_secret": 1, "high_entropy_string": 2}
_PRIORITY.update(gcp_service_account_key=0, password=90, generic_secret=91, high_entropy_string=99)
_EXTRA_KINDS = ("gcp_service_account_key", "password", "generic_secret", "high_entropy_string")
KINDS = (*dict.fromkeys(rule.kind for rule in RULES), *_EXTRA_KINDS)

# ----- PEM blocks -----------------------------------------------------------------------

_PEM_BODY = re.compile(r"(?:[A-Za-z0-9+/=\s]|\\[nr]){0,65536}+")
_SERVICE_ACCOUNT = re.compile(r"\"type\"\s*:\s*\"service_account\"")
_PUBLIC_PEM = re.compile(
    r"-----BEGIN (?:CERTIFICATE|PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE REQUEST|X509 CRL)-----"
)


class _PemEnds:
    """Where PEM blocks end: after their END line, else after their body. Each "-----END "
    is looked for once per scan, so a text of many BEGIN lines stays linear."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._next_end = -2  # not looked for yet; -1: there is none

    def after(self, start: int) -> int:
        text = self._text
        if self._next_end == -2 or -1 < self._next_end < start:
            self._next_end = text.find("-----END ", start)
        end = self._next_end
        if end != -1 and end - start <= 65536:
            close = text.find("-----", end + 9, end + 80)
            if close != -1:
                return close + 5
        body = _PEM_BODY.match(text, start)
        return body.end() if body else start


def _public_pem_spans(text: str, lower: str) -> list[tuple[int, int]]:
    if "-----begin" not in lower:
        return []
    ends = _PemEnds(text)
    return [(m.start(), ends.after(m.end())) for m in _PUBLIC_PEM.finditer(text)]


# ----- entropy --------------------------------------------------------------------------


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


# The 1st percentile of the entropy of uniformly random base62 strings, by length (measured
# with 2,000 samples each); linear in between, flat past the ends.
_THRESHOLDS = ((24, 3.86), (32, 4.2), (40, 4.46), (64, 4.9), (128, 5.4), (256, 5.65))


def entropy_threshold(length: int) -> float:
    if length <= _THRESHOLDS[0][0]:
        return _THRESHOLDS[0][1]
    for (n0, h0), (n1, h1) in itertools.pairwise(_THRESHOLDS):
        if length <= n1:
            return h0 + (h1 - h0) * (length - n0) / (n1 - n0)
    return _THRESHOLDS[-1][1]


_TOKEN = re.compile(r"[A-Za-z0-9+/_\-](?<![A-Za-z0-9+/_\-=].)[A-Za-z0-9+/_\-]{23,}+={0,2}+")
_DOTTED = re.compile(r"\.\w")
_WORD_RUN = re.compile(r"[a-z]{4,}|[A-Z]{4,}")


def _wordy(token: str) -> bool:
    """Whether 40% or more of it is runs of four or more letters of one case: words glued
    together (``InvalidBase64PaddingDefect``), which random strings rarely have."""
    return sum(len(run) for run in _WORD_RUN.findall(token)) >= 0.4 * len(token)


_SRI = ("sha256-", "sha384-", "sha512-")  # subresource integrity: a public hash
_NOT_A_SECRET_BEFORE = (
    "base64,",
    "sha256-",
    "sha384-",
    "sha512-",
    "ssh-rsa ",
    "ssh-ed25519 ",
    "ssh-dss ",
    "nistp256 ",
    "nistp384 ",
    "nistp521 ",
)


def _random_tokens(text: str, public: list[tuple[int, int]]) -> Iterator[Finding]:
    for m in _TOKEN.finditer(text):
        token = m.group()
        after = text[m.end() : m.end() + 2]
        if len(token) > 1024 or after[:1] in ("=", "@") or _DOTTED.match(after):
            continue  # blobs; an email's local part; a host or file name
        digits = sum(c.isdigit() for c in token)
        if digits < 2 or not _mixed(token) or _wordy(token):
            continue
        bits = entropy(token)
        if bits < entropy_threshold(len(token)):
            continue
        if token.startswith(_SRI) or text[max(0, m.start() - 20) : m.start()].endswith(
            _NOT_A_SECRET_BEFORE
        ):
            continue
        if any(a <= m.start() < b for a, b in public):
            continue
        detail = f"{bits:.1f} bits/char over {len(token)} chars"
        yield Finding("high_entropy_string", m.start(), m.end(), 0.6, detail)


# ----- the detector ---------------------------------------------------------------------

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
            for rule in RULES:
                if any(k in lower for k in rule.keywords):
                    findings.extend(self._apply(rule, text))
            if any(f.kind == "aws_access_key_id" for f in findings):
                findings.extend(self._aws_pairs(text, findings))
            if self._assign:
                findings.extend(_assigned(text, lower))
            if self._entropy:
                findings.extend(_random_tokens(text, _public_pem_spans(text, lower)))
        except Exception as exc:  # a detector never raises on odd text; it says so
            detail = f"scan stopped ({type(exc).__name__})"
            findings.append(Finding("secrets_incomplete", 0, 0, 0.0, detail=detail))
        kept = [f for f in findings if f.kind in self.kinds or f.kind == "secrets_incomplete"]
        return resolve_overlaps(kept, _PRIORITY, _TIERS)

    def _apply(self, rule: Rule, text: str) -> Iterator[Finding]:
        ends = _PemEnds(text)
        key_file = '"service_account"' in text
        for m in rule.pattern.finditer(text):
            start, end = m.span(rule.group)
            if rule.kind == "private_key":
                end = ends.after(m.end())
                if key_file and _SERVICE_ACCOUNT.search(text, max(0, start - 4096), end + 4096):
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
                if m.span() not in named and _mixed(m.group()):
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
