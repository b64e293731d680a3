"""The known formats: one :class:`Rule` per kind of key or token, and how their findings
rank when they overlap."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass


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


def mixed(token: str) -> bool:
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


# A value that stands for one: "${DB_PASSWORD}", "<your key>", "changeme", "xxxx".
PLACEHOLDER = re.compile(
    r"(?i)^(?:\$\{?\w+\}?|<[^>]*>|\*+|x+|\.+|%\(?\w*\)?s|\{\{.*\}\}|(?:none|null|nil|true|false|"
    r"undefined|changeme|change_me|secret|password|passwd|pass|pwd|pw|example|redacted|hidden|"
    r"dummy|test|your[_\-]?\w*|my[_\-]?(?:pass\w*|secret\w*|key|token|api\w*)|str|string|int|bool)"
    r"\W*)$"
)


def _not_placeholder(value: str) -> bool:
    return PLACEHOLDER.match(value) is None


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
        check=mixed,
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
# Every rule's keywords, each once: a scan tests each keyword once (``in``, in C) and then
# runs the rules whose keywords it found. Testing them rule by rule, through a generator
# per rule, was most of the detector's time on a short text (6.6 µs of 9.4).
KEYWORDS = tuple(sorted({k for rule in RULES for k in rule.keywords}))

# Longest finding wins an overlap; on equal spans the more specific rule (earlier here).
PRIORITY = {rule.kind: rank for rank, rule in reversed(list(enumerate(RULES)))}
# A known format beats a named value, which beats mere randomness, however long each is.
TIERS = {"password": 1, "generic_secret": 1, "high_entropy_string": 2}
PRIORITY.update(gcp_service_account_key=0, password=90, generic_secret=91, high_entropy_string=99)
_EXTRA_KINDS = ("gcp_service_account_key", "password", "generic_secret", "high_entropy_string")
KINDS = (*dict.fromkeys(rule.kind for rule in RULES), *_EXTRA_KINDS)
