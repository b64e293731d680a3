"""The secrets guard on real text: each format with its span and kind, look-alikes left
alone, long benign text (code, prose, a git log, UUIDs) with no findings, odd input that
never raises, and no value ever in a finding.

Token-shaped test values are assembled at run time, so this file holds no string that a
secret scanner would take for a live credential."""

from __future__ import annotations

import base64
import json
import random
import string
import uuid

import pytest

from bounded.validation.guards import registry
from bounded.validation.guards.base import GuardConfigError, ScanContext
from bounded.validation.guards.secrets import KINDS, SecretsDetector, entropy

CTX = ScanContext()
RNG = random.Random(20261201)


def rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    """Random; with a digit and a capital whenever the alphabet has them (as keys do)."""
    while True:
        value = "".join(RNG.choice(alphabet) for _ in range(n))
        if all(
            any(f(c) for c in value) for f in (str.isdigit, str.isupper) if any(map(f, alphabet))
        ):
            return value


def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def secrets() -> SecretsDetector:
    detector = registry.build("secrets")
    assert isinstance(detector, SecretsDetector)
    return detector


def spans(detector: SecretsDetector, text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in detector.scan(text, CTX)]


AWS_ID = "AKIA" + "IOSFODNN7" + "EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
JWT = f"{b64url({'alg': 'HS256', 'typ': 'JWT'})}.{b64url({'sub': '42', 'iat': 1})}.{rand(43)}"
PEM_BODY = "\n".join(rand(64, string.ascii_letters + string.digits + "+/") for _ in range(4))
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\n" + PEM_BODY + "\n-----END RSA PRIVATE KEY-----"
GCP_PEM = "-----BEGIN " + "PRIVATE KEY-----\\n" + rand(64) + "\\n-----END PRIVATE KEY-----\\n"
GCP_JSON = (
    '{"type": "service_account", "project_id": "demo", "private_key_id": "'
    + rand(40, "0123456789abcdef")
    + '", "private_key": "'
    + GCP_PEM
    + '", "client_email": "bot@demo.iam.gserviceaccount.com"}'
)
AZURE_KEY = base64.b64encode(RNG.randbytes(64)).decode()
STRIPE = "sk_" + "live_" + rand(24)
GITHUB = "ghp_" + rand(36)
GITHUB_PAT = "github_" + "pat_" + rand(22) + "_" + rand(59)
GITLAB = "glpat-" + rand(20)
SLACK = "xoxb-" + "1234567890-1234567890123-" + rand(24)
SLACK_HOOK = "https://hooks.slack.com/services/T" + rand(8) + "/B" + rand(8) + "/" + rand(24)
OPENAI = "sk-proj-" + rand(64, string.ascii_letters + string.digits + "_-")
OPENAI_OLD = "sk-" + rand(20) + "T3Blbk" + "FJ" + rand(20)
ANTHROPIC = "sk-ant-" + "api03-" + rand(80, string.ascii_letters + string.digits + "_-") + "AA"
GOOGLE = "AIza" + rand(35)
TOKEN = rand(40)

FOUND = [
    (f"export AWS_ACCESS_KEY_ID={AWS_ID}", "aws_access_key_id", AWS_ID),
    (f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key", AWS_SECRET),
    (
        f"key {AWS_ID} and then, on the next line,\n{AWS_SECRET}",
        "aws_secret_access_key",
        AWS_SECRET,
    ),
    (f"maps key={GOOGLE}&v=3", "gcp_api_key", GOOGLE),
    (GCP_JSON, "gcp_service_account_key", GCP_PEM.rstrip("\\n")),
    (PEM, "private_key", PEM),
    (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
        + AZURE_KEY
        + ";EndpointSuffix=core.windows.net",
        "azure_storage_key",
        AZURE_KEY,
    ),
    (
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey="
        + AZURE_KEY[:44],
        "azure_connection_string",
        AZURE_KEY[:44],
    ),
    (
        "https://acct.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&sig=" + rand(43) + "%3D",
        "azure_sas_token",
        None,
    ),
    (f"token: {GITHUB}", "github_token", GITHUB),
    (f"GH_TOKEN={GITHUB_PAT}", "github_token", GITHUB_PAT),
    (f"gitlab {GITLAB}.", "gitlab_token", GITLAB),
    (f"SLACK={SLACK}", "slack_token", SLACK),
    (f"post to {SLACK_HOOK} now", "slack_webhook", SLACK_HOOK),
    (f"stripe.api_key = '{STRIPE}'", "stripe_key", STRIPE),
    (f"OPENAI_API_KEY={OPENAI}", "openai_key", OPENAI),
    (f"old key {OPENAI_OLD}", "openai_key", OPENAI_OLD),
    (f"x-api-key: {ANTHROPIC}", "anthropic_key", ANTHROPIC),
    (f"Authorization: Bearer {JWT}", "jwt", JWT),
    ("DATABASE_URL=postgres://app:S3cr3t-P4ss@db.internal:5432/app", "url_password", "S3cr3t-P4ss"),
    ("mongodb+srv://u:pa55w0rd!x@cluster0.example.net/db", "url_password", "pa55w0rd!x"),
    ("redis://:Zq8vLm2xR7@cache:6379/0", None, None),  # no user: not a userinfo password
    ("amqp://guest:Gu3st!2024@rabbit:5672/", "url_password", "Gu3st!2024"),
    ('password = "Tr0ub4dor&3x"', "password", "Tr0ub4dor&3x"),
    ("Server=db;User Id=sa;Password=myP4ssw0rd!;", "password", "myP4ssw0rd!"),
    ("dbPassword: 'c0rrect horse Battery'", "password", "c0rrect horse Battery"),
    ("API_KEY=" + "0f3a9c2b7d1e4f5a8b6c9d0e1f2a3b4c", "generic_secret", None),
    ("client_secret: " + rand(32), None, None),  # a format rule or the name: either is fine
    (f"the token is {TOKEN}.", "high_entropy_string", TOKEN),
]


@pytest.mark.parametrize(("text", "kind", "value"), FOUND)
def test_each_format_is_found_with_its_span(
    secrets: SecretsDetector, text: str, kind: str | None, value: str | None
) -> None:
    found = spans(secrets, text)
    if kind is None and value is None and text.startswith("redis"):
        assert found == [] or found[0][0] != "url_password"
        return
    assert len(found) >= 1, text
    if kind is not None:
        assert kind in [k for k, _ in found]
    if value is not None:
        assert (kind, value) in found if kind else value in [v for _, v in found]


def test_an_access_key_id_and_its_secret_are_two_findings(secrets: SecretsDetector) -> None:
    text = f"[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n"
    assert spans(secrets, text) == [
        ("aws_access_key_id", AWS_ID),
        ("aws_secret_access_key", AWS_SECRET),
    ]


LOOKALIKES = [
    "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln"[:10] + ".abcdefghijk.lmnopqrstuv",  # not JSON
    b64url({"typ": "JWT"}) + "." + b64url({"sub": 1}) + "." + rand(20),  # no alg
    "ghp_" + "abc123",  # too short
    "AKIA" + "1234",
    "sk-learn-is-a-library-for-machine-learning-in-python",
    "postgres://user:${DB_PASSWORD}@db:5432/app and mysql://root:***@localhost/x",
    "https://user:password@example.com/ and http://host:8080/path@v2",
    "password = get_password()  # from the vault",
    "password: ${POSTGRES_PASSWORD}",
    "password = os.environ['DB_PASSWORD']",
    'password = "changeme"',
    "password_hash = " + "5f4dcc3b5aa765d61d8327deb882cf99",
    "token_type: bearer, max_tokens=1024, tokens: 128000",
    "bypass = True; compass = 'north-north-west'",
    "-----BEGIN CERTIFICATE-----\n" + PEM_BODY + "\n-----END CERTIFICATE-----",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + rand(40) + " me@laptop",
    "<img src='data:image/png;base64," + base64.b64encode(RNG.randbytes(300)).decode() + "'>",
    '<script integrity="sha384-' + base64.b64encode(RNG.randbytes(48)).decode() + '"></script>',
    "InvalidBase64PaddingDefect AbstractSingletonProxyFactoryBean2 HTTPServerErrorV2Handler",
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_are_not_flagged(secrets: SecretsDetector, text: str) -> None:
    assert spans(secrets, text) == []


def git_log() -> str:
    lines = []
    for i in range(60):
        sha = "".join(RNG.choice("0123456789abcdef") for _ in range(40))
        tree = "".join(RNG.choice("0123456789abcdef") for _ in range(40))
        lines += [
            f"commit {sha}",
            f"tree {tree}",
            f"Date:   Tue Dec {1 + i % 28} 1{i % 10}:0{i % 6}:27 2026 +0100",
            "",
            f"    routing: retry budget per deployment (#{400 + i}), fixes {sha[:7]}",
            f"    Change-Id: I{sha}",
            "",
        ]
    return "\n".join(lines)


BENIGN = "\n\n".join(
    [
        git_log(),
        "\n".join(
            f"{RNG.getrandbits(128):032x}  sha256:{RNG.getrandbits(256):064x}  "
            f"{uuid.UUID(int=RNG.getrandbits(128))}"
            for _ in range(80)
        ),
        '''
def refresh_session(client: HttpClient, settings: Settings) -> Session:
    """Exchange the refresh token for a new session; the secret never leaves settings."""
    token = settings.refresh_token
    password = settings.password.get_secret_value()
    api_key = os.environ["BOUNDED_API_KEY"]
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": str(uuid.uuid4())}
    response = client.post("/oauth/token", json={"grant_type": "refresh_token"}, headers=headers)
    return Session.from_response(response, max_tokens=4096, secret_key_length=32)
''',
        "The tokenizer splits text into tokens; a passphrase should be long, and the key "
        "insight of the paper is that secrets rotate. Keys, tokens and passwords are "
        "configured through environment variables, never in the repository. " * 20,
        "/usr/lib/python3.11/site-packages/bounded/validation/guards/registry.py "
        "node_modules/@types/react-dom/index.d.ts com.example.project.module.SubModuleClass "
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    ]
)


def test_keys_whose_keywords_overlap_are_each_found(secrets: SecretsDetector) -> None:
    """Anthropic keys start "sk-ant-", OpenAI keys "sk-" (the keyword each rule waits for):
    in one text, each is found with its own kind."""
    anthropic = "sk-ant-api03-" + rand(93) + "AA"
    openai_key = "sk-proj-" + rand(48)
    found = spans(secrets, f"A={anthropic} B={openai_key}")
    assert found == [("anthropic_key", anthropic), ("openai_key", openai_key)]
    assert spans(secrets, f"only {openai_key}") == [("openai_key", openai_key)]


def test_no_findings_on_long_benign_text(secrets: SecretsDetector) -> None:
    assert len(BENIGN) > 10_000
    assert spans(secrets, BENIGN) == []


def test_uuids_and_hashes_never_reach_the_entropy_threshold() -> None:
    assert entropy("3f2b8c1e-9d4a-4e7b-8f6c-2a1d0e9b7c35") < 4.1
    assert entropy("0123456789abcdef" * 4) == 4.0


ODD = [
    "",
    "\x00" * 10_000,
    "\ud800\udfff lone surrogates " + GITHUB + " \ud83d",
    "İstanbul İ password=İİİİİİİİ İ " + GITHUB,
    "Ünïcödé Ελληνικά русский 日本語 العربية 😀 token=" + rand(30),
    "a" * 1_000_000,
    "A1" * 500_000,
    "=" * 1_000_000,
    ":" * 1_000_000,
    "://" * 300_000,
    "password=" * 100_000,
    "-----BEGIN PRIVATE KEY-----" * 30_000,
    "eyJ" * 300_000,
    "eyJ" + "a" * 100_000 + "." + "b" * 100_000 + ".",
    "sk-" * 300_000,
    "<" * 500_000,
]


@pytest.mark.parametrize("text", ODD, ids=lambda t: repr(t[:12]) + f"x{len(t)}")
def test_odd_text_never_raises(secrets: SecretsDetector, text: str) -> None:
    found = secrets.scan(text, CTX)
    assert isinstance(found, list)
    assert all(0 <= f.start <= f.end <= len(text) for f in found)
    assert not [f for f in found if f.kind == "secrets_incomplete"]


def test_odd_text_still_finds_what_is_there(secrets: SecretsDetector) -> None:
    text = "\ud800 İİ token " + GITHUB + " \x00 İ"
    assert spans(secrets, text) == [("github_token", GITHUB)]


def test_detail_and_json_never_hold_the_value(secrets: SecretsDetector) -> None:
    text = "\n".join(t for t, _, _ in FOUND)
    found = secrets.scan(text, CTX)
    assert len(found) >= len(FOUND) - 2
    for f in found:
        value = text[f.start : f.end]
        dumped = json.dumps(f.as_json()) + repr(f.detail)
        assert value not in dumped
        assert value[:8] not in dumped


def test_kinds_option_and_entropy_switch() -> None:
    text = f"{GITHUB} {STRIPE} {TOKEN}"
    only = registry.build("secrets", {"kinds": ["stripe_key"]})
    assert [f.kind for f in only.scan(text, CTX)] == ["stripe_key"]
    formats = registry.build("secrets", {"entropy": False})
    assert [f.kind for f in formats.scan(text, CTX)] == ["github_token", "stripe_key"]
    assert "high_entropy_string" in KINDS and "github_token" in KINDS


@pytest.mark.parametrize(
    "options", [{"kinds": ["github_token", "nope"]}, {"kinds": "jwt"}, {"entropy": "yes"}, {"x": 1}]
)
def test_bad_options_raise_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(GuardConfigError):
        registry.build("secrets", options)


def test_registry_knows_both_guards() -> None:
    assert {"pii", "secrets"} <= set(registry.kinds())
