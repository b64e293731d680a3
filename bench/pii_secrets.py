"""PII and secrets guards: ms/KB on realistic text, precision/recall per entity, and peers.

    .venv/bin/python bench/pii_secrets.py                 # ours; peers too if installed
    .venv/bin/python bench/pii_secrets.py --setup-peers   # once: bench/.venv-guards with
        # presidio-analyzer (its pattern recognizers, no NLP model), presidio-anonymizer,
        # structlog, detect-secrets and llm-guard --no-deps (only its Secrets scanner is run)

Speed: each guard alone and both together, best of 3 after a warm-up, in ms per KB of UTF-8
on five corpora: the 1,500 sentences of ../shared/data/pii/synth_dataset_v2.json scanned one
at a time (as requests come), long generated prompts (prose with numbers, dates, prices,
versions), Python source from this interpreter's standard library, generated service logs
and a generated git log (hashes, UUIDs, timestamps, no PII).

Accuracy: precision/recall per pattern entity (email, phone, credit card, IBAN, SSN, IP) on
the shared set (a finding counts when it overlaps a labelled span of its type), the same on a
labelled set this script generates from its own templates and number generators (so the
figures are not only the shared set's), false positives on the benign corpora, and recall
per secret format on generated secrets with false positives on benign text.

Peers run in bench/.venv-guards (a subprocess; never needed by the test suite). The last
line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "pii" / "synth_dataset_v2.json"
PEER_VENV = ROOT / "bench" / ".venv-guards"
PEER_PACKAGES = ["presidio-analyzer", "presidio-anonymizer", "structlog", "detect-secrets"]
ENTITIES = ("email", "phone", "credit_card", "iban", "us_ssn", "ip_address")
SHARED_TYPES = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban",
    "US_SSN": "us_ssn",
    "IP_ADDRESS": "ip_address",
}
Labelled = list[tuple[str, list[tuple[str, int, int]]]]  # text, [(entity, start, end)]

# ----- corpora --------------------------------------------------------------------------

WORDS = (  # noqa: SIM905 - a paragraph reads better than 90 quoted words
    "the a of to and in for on with as by at from that this is are was be have will can "
    "customer order invoice refund policy account support request report quarter revenue "
    "model prompt answer context retrieval latency budget team feature release canary "
    "summarise explain compare translate draft review schedule meeting project deadline "
    "shipping warehouse delivery contract clause section table figure appendix chapter"
).split()


def prompts(rng: random.Random, n: int) -> str:
    out = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
        extra = rng.choice(
            [
                f"{rng.randint(2, 999)} units",
                f"${rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",
                f"{rng.randint(1, 99)}%",
                f"on 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                f"at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                f"version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
                f"order #{rng.randint(10_000, 99_999)}",
                f"section {rng.randint(1, 9)}.{rng.randint(1, 9)}",
                f"{rng.randint(1, 40)} pages",
            ]
        )
        words.insert(rng.randint(0, len(words)), extra)
        out.append(" ".join(words).capitalize() + ("." if i % 5 else "?"))
    return " ".join(out)


def logs(rng: random.Random, n: int) -> str:
    lines = []
    for i in range(n):
        lines.append(
            f"2026-12-01T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z "
            f"{rng.choice(['INFO', 'WARN', 'DEBUG'])} "
            f"request_id={uuid.UUID(int=rng.getrandbits(128))} "
            f"trace={rng.getrandbits(128):032x} route=/v1/chat/completions status="
            f"{rng.choice([200, 200, 429, 503])} latency_ms={rng.randint(3, 4000)} "
            f"tokens_in={rng.randint(10, 8000)} cost_usd=0.{rng.randint(0, 99999):05d}"
        )
    return "\n".join(lines)


def git_log(rng: random.Random, n: int) -> str:
    lines = []
    for i in range(n):
        sha = f"{rng.getrandbits(160):040x}"
        lines += [
            f"commit {sha}",
            f"Merge: {sha[:7]} {rng.getrandbits(28):07x}",
            f"Date:   Tue Dec 1 {i % 24:02d}:{i % 60:02d}:07 2026 +0100",
            "",
            f"    routing: retry budget per deployment (#{400 + i})",
            f"    Change-Id: I{rng.getrandbits(160):040x}",
            "",
        ]
    return "\n".join(lines)


def stdlib_code() -> str:
    import textwrap

    base = Path(textwrap.__file__).parent
    names = ["textwrap.py", "argparse.py", "dataclasses.py", "http/client.py", "json/decoder.py"]
    names += ["email/message.py", "logging/__init__.py", "asyncio/tasks.py", "csv.py"]
    return "\n".join((base / name).read_text() for name in names)


def shared_set() -> Labelled:
    rows = json.loads(SHARED.read_text())
    out: Labelled = []
    for row in rows:
        gold = [
            (SHARED_TYPES[s["entity_type"]], s["start_position"], s["end_position"])
            for s in row["spans"]
            if s["entity_type"] in SHARED_TYPES
        ]
        out.append((row["full_text"], gold))
    return out


# ----- our own labelled set -------------------------------------------------------------


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = sum(
            (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d
            for i, d in enumerate(int(c) for c in reversed(digits))
        )
        if total % 10 == 0:
            return digits
    raise AssertionError


def _iban(country: str, bban: str) -> str:
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - numeric % 97:02d}{bban}"


def own_set(rng: random.Random) -> Labelled:
    """Sentences from templates written for this bench, with generated valid values, and
    distractors (bad checksums, dates, versions, ids) that must not be flagged."""
    import phonenumbers

    def phone() -> str:
        region = rng.choice(["US", "GB", "DE", "FR"])
        for _ in range(50):
            base = phonenumbers.example_number_for_type(
                region, rng.choice([phonenumbers.PhoneNumberType.MOBILE, 0])
            )
            assert base is not None
            nsn = str(base.national_number)
            nsn = nsn[:-3] + "".join(rng.choice(string.digits) for _ in range(3))
            number = phonenumbers.parse("+" + str(base.country_code) + nsn)
            if phonenumbers.is_valid_number(number):
                style = rng.choice(
                    [
                        phonenumbers.PhoneNumberFormat.NATIONAL,
                        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                    ]
                )
                return phonenumbers.format_number(number, style)
        raise AssertionError

    def card() -> str:
        prefix, length = rng.choice([("4", 16), ("51", 16), ("2221", 16), ("37", 15), ("6011", 16)])
        digits = _luhn_complete(prefix + str(rng.randint(0, 9)), length, rng)
        if rng.random() < 0.5 and length == 16:
            return " ".join(digits[i : i + 4] for i in range(0, 16, 4))
        return digits

    def iban() -> str:
        country, bban_len = rng.choice([("DE", 18), ("FR", 23), ("GB", 18), ("NL", 14), ("ES", 20)])
        bban = "".join(rng.choice(string.digits) for _ in range(bban_len))
        if country in ("GB", "NL"):
            bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + bban[4:]
        value = _iban(country, bban)
        return (
            " ".join(value[i : i + 4] for i in range(0, len(value), 4))
            if rng.random() < 0.5
            else value
        )

    def ssn() -> str:
        area = rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"

    def ip() -> str:
        if rng.random() < 0.7:
            return ".".join(
                str(n) for n in (rng.randint(11, 223), *rng.choices(range(256), k=2), 7)
            )
        return ":".join(f"{rng.getrandbits(16):x}" for _ in range(8))

    def email() -> str:
        user = rng.choice(["ana", "j.smith", "li_wei", "m.o'neil", "kofi+news", "sam"])
        return (
            user.replace("'", "")
            + "@"
            + rng.choice(["example.com", "mail.example.org", "uni.ac.uk"])
        )

    makers = {
        "email": email,
        "phone": phone,
        "credit_card": card,
        "iban": iban,
        "us_ssn": ssn,
        "ip_address": ip,
    }
    templates = {
        "email": ["Please reply to {} by Friday.", "Contact: {}", "cc {} on the thread"],
        "phone": ["Call me on {} after six.", "Mobile: {}", "my number is {}, thanks"],
        "credit_card": [
            "Charge card {} for the order.",
            "My Visa is {}",
            "card number {} was declined",
        ],
        "iban": ["Wire it to {} please.", "IBAN: {}", "refund to account {} today"],
        "us_ssn": ["My SSN is {}.", "SSN {} on the W-2", "social security {}"],
        "ip_address": ["Requests from {} are blocked.", "server at {} went down", "login from {}"],
    }
    distractors = [
        "Order 4111111111111112 shipped on 2026-03-04.",
        "Account GB82WEST12345698765433 is closed.",
        "Reference 000-12-3456 and 666-45-6789 are not SSNs.",
        "Python 3.11.7, release 2.7.18.1, section 4.2.1, build 10.0.19041.",
        "Totals: 1,234,567.89 and 98765432 and 12345678901234.",
        "Timestamps 1733090000 and 2026-12-01 22:45:53 and 12:34:56.",
        "Ports 8080 and 443, ratio 0.333333333, pi 3.14159265358979.",
    ]
    out: Labelled = []
    for _ in range(300):
        entity = rng.choice(ENTITIES)
        value = makers[entity]()
        template = rng.choice(templates[entity])
        text = template.format(value)
        start = text.index(value)
        out.append((text, [(entity, start, start + len(value))]))
    out += [(text, []) for text in distractors * 10]
    rng.shuffle(out)
    return out


# ----- secrets samples ------------------------------------------------------------------


def secret_samples(rng: random.Random) -> list[tuple[str, str]]:
    """(kind, text) with one generated secret each; values assembled at run time."""

    def r(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    def b64url(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    samples = []
    for _ in range(5):
        pem = "\n".join(r(64, string.ascii_letters + string.digits + "+/") for _ in range(5))
        samples += [
            ("aws_access_key_id", "AKIA" + r(16, string.ascii_uppercase + "234567")),
            (
                "aws_secret_access_key",
                "aws_secret_access_key = " + r(40, string.ascii_letters + "0123456789/+"),
            ),
            ("gcp_api_key", "key=AIza" + r(35, string.ascii_letters + string.digits + "-_")),
            ("github_token", "token ghp_" + r(36)),
            ("github_token", "github_" + "pat_" + r(22) + "_" + r(59)),
            ("gitlab_token", "glpat-" + r(20)),
            (
                "slack_token",
                "xoxb-" + r(10, string.digits) + "-" + r(13, string.digits) + "-" + r(24),
            ),
            (
                "slack_webhook",
                "https://hooks.slack.com/services/T" + r(8) + "/B" + r(8) + "/" + r(24),
            ),
            ("stripe_key", "sk_" + "live_" + r(24)),
            ("openai_key", "sk-proj-" + r(100, string.ascii_letters + string.digits + "-_")),
            ("anthropic_key", "sk-ant-api03-" + r(90, string.ascii_letters + string.digits + "-_")),
            (
                "jwt",
                ".".join([b64url({"alg": "RS256", "kid": r(8)}), b64url({"sub": r(6)}), r(86)]),
            ),
            (
                "private_key",
                "-----BEGIN " + "EC PRIVATE KEY-----\n" + pem + "\n-----END EC PRIVATE KEY-----",
            ),
            ("url_password", f"postgres://app:{r(12)}@db.internal:5432/app"),
            (
                "azure_storage_key",
                "AccountName=a;AccountKey=" + base64.b64encode(rng.randbytes(64)).decode(),
            ),
            ("password", f'password = "{r(10)}!{r(3)}"'),
            ("high_entropy_string", "the value is " + r(40)),
        ]
    return samples


# ----- measuring ------------------------------------------------------------------------


def kb(texts: list[str]) -> float:
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1024


def ms_per_kb(scan: Any, texts: list[str], repeat: int = 3) -> float:
    for text in texts[:50]:
        scan(text)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for text in texts:
            scan(text)
        best = min(best, time.perf_counter() - started)
    return round(best * 1000 / kb(texts), 4)


def precision_recall(found: list[list[tuple[str, int, int]]], data: Labelled) -> dict[str, Any]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for spans, (_, gold) in zip(found, data, strict=True):
        used: set[int] = set()
        for kind, start, end in spans:
            if kind not in ENTITIES:
                continue
            match = next(
                (
                    i
                    for i, (k, a, b) in enumerate(gold)
                    if i not in used and k == kind and start < b and a < end
                ),
                None,
            )
            if match is None:
                fp[kind] += 1
            else:
                used.add(match)
                tp[kind] += 1
        for i, (kind, _, _) in enumerate(gold):
            if i not in used:
                fn[kind] += 1
    out: dict[str, Any] = {}
    for kind in (*ENTITIES, "all"):
        t = sum(tp.values()) if kind == "all" else tp[kind]
        f = sum(fp.values()) if kind == "all" else fp[kind]
        n = sum(fn.values()) if kind == "all" else fn[kind]
        out[kind] = {
            "p": round(t / (t + f), 3) if t + f else None,
            "r": round(t / (t + n), 3) if t + n else None,
            "tp": t,
            "fp": f,
            "fn": n,
        }
    return out


def corpora(rng: random.Random) -> dict[str, list[str]]:
    return {
        "synth_sentences": [t for t, _ in shared_set()],
        "prompts": [prompts(rng, 40) for _ in range(40)],
        "code": [stdlib_code()],
        "logs": [logs(rng, 200) for _ in range(10)],
        "git_log": [git_log(rng, 300)],
    }


# ----- ours -----------------------------------------------------------------------------


def run_ours(data: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    from bounded.validation.guards import registry
    from bounded.validation.guards.base import ScanContext

    ctx = ScanContext()
    pii, secrets = registry.build("pii"), registry.build("secrets")
    lenient = registry.build("pii", {"phone_leniency": "possible"})

    def both(text: str) -> None:
        pii.scan(text, ctx)
        secrets.scan(text, ctx)

    speed = {
        name: {
            "pii": ms_per_kb(lambda t: pii.scan(t, ctx), texts),
            "secrets": ms_per_kb(lambda t: secrets.scan(t, ctx), texts),
            "both": ms_per_kb(both, texts),
        }
        for name, texts in data["corpora"].items()
    }

    def spans(detector: Any, labelled: Labelled) -> list[list[tuple[str, int, int]]]:
        return [[(f.kind, f.start, f.end) for f in detector.scan(t, ctx)] for t, _ in labelled]

    benign_fp = {
        name: dict(
            Counter(
                f.kind
                for t in data["corpora"][name]
                for f in [*pii.scan(t, ctx), *secrets.scan(t, ctx)]
            )
        )
        for name in ("prompts", "code", "logs", "git_log")
    }
    found_secrets = Counter()
    total_secrets = Counter(kind for kind, _ in data["secrets"])
    for kind, text in data["secrets"]:
        if kind in {f.kind for f in secrets.scan(text, ctx)}:
            found_secrets[kind] += 1
    return {
        "speed_ms_per_kb": speed,
        "shared": precision_recall(spans(pii, data["shared"]), data["shared"]),
        "shared_phone_possible": precision_recall(spans(lenient, data["shared"]), data["shared"]),
        "own": precision_recall(spans(pii, data["own"]), data["own"]),
        "benign_findings": benign_fp,
        "secrets_recall": {k: f"{found_secrets[k]}/{n}" for k, n in total_secrets.items()},
        "secrets_recall_all": round(sum(found_secrets.values()) / sum(total_secrets.values()), 3),
    }


# ----- peers (run inside bench/.venv-guards) --------------------------------------------


def run_peers(data: dict[str, Any]) -> dict[str, Any]:
    import logging

    logging.disable(logging.WARNING)
    out: dict[str, Any] = {}
    try:
        import tldextract.tldextract as tld

        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=())  # its bundled list; no fetch
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )

        recognizers = [
            EmailRecognizer(),
            PhoneRecognizer(),
            CreditCardRecognizer(),
            IbanRecognizer(),
            UsSsnRecognizer(),
            IpRecognizer(),
        ]
        back = dict(SHARED_TYPES)

        def presidio(text: str) -> list[tuple[str, int, int]]:
            found = []
            for rec in recognizers:
                for res in rec.analyze(text, rec.supported_entities, None):
                    found.append((back.get(res.entity_type, res.entity_type), res.start, res.end))
            return found

        out["presidio"] = {
            "speed_ms_per_kb": {
                name: ms_per_kb(presidio, texts, repeat=1)
                for name, texts in data["corpora"].items()
            },
            "shared": precision_recall([presidio(t) for t, _ in data["shared"]], data["shared"]),
            "own": precision_recall([presidio(t) for t, _ in data["own"]], data["own"]),
            "benign_findings": {
                name: dict(Counter(k for t in data["corpora"][name] for k, _, _ in presidio(t)))
                for name in ("prompts", "code", "logs", "git_log")
            },
        }
    except Exception as exc:
        out["presidio"] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        out["ours_person"] = _person_names(data)
    except Exception as exc:
        out["ours_person"] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        scanner = _llm_guard_secrets()

        def llm_guard(text: str) -> bool:
            return not scanner.scan(text)[1]

        total = Counter(kind for kind, _ in data["secrets"])
        found = Counter(kind for kind, text in data["secrets"] if llm_guard(text))
        out["llm_guard_secrets"] = {
            "speed_ms_per_kb": {
                name: ms_per_kb(
                    llm_guard, texts if name != "synth_sentences" else texts[:300], repeat=1
                )
                for name, texts in data["corpora"].items()
            },
            "secrets_recall": {k: f"{found[k]}/{n}" for k, n in total.items()},
            "secrets_recall_all": round(sum(found.values()) / sum(total.values()), 3),
            "benign_texts_flagged": {
                name: sum(llm_guard(t) for t in data["corpora"][name])
                for name in ("prompts", "logs", "git_log")
            },
        }
    except Exception as exc:
        out["llm_guard_secrets"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _person_names(data: dict[str, Any]) -> dict[str, Any]:
    """Our opt-in ``person`` entity (spaCy's small English model, the ``names`` extra), which
    this venv has: P/R on the shared set's PERSON spans and ms/KB."""
    sys.path.insert(0, str(ROOT / "src"))
    from bounded.validation.guards import registry
    from bounded.validation.guards.base import ScanContext

    detector, ctx = registry.build("pii", {"entities": ["person"]}), ScanContext()
    rows = json.loads(SHARED.read_text())
    labelled: Labelled = [
        (
            row["full_text"],
            [
                ("email", s["start_position"], s["end_position"])  # "email" stands in for person
                for s in row["spans"]
                if s["entity_type"] == "PERSON"
            ],
        )
        for row in rows
    ]
    found = [
        [("email", f.start, f.end) for f in detector.scan(t, ctx) if f.kind == "person"]
        for t, _ in labelled
    ]
    scores = precision_recall(found, labelled)["email"]
    texts = [t for t, _ in labelled]
    return {
        "shared_person": scores,
        "ms_per_kb": ms_per_kb(lambda t: detector.scan(t, ctx), texts, 1),
    }


def _llm_guard_secrets() -> Any:
    """llm_guard's Secrets scanner without importing the package (whose __init__ loads torch
    and every model scanner)."""
    import importlib.util
    import types

    spec = importlib.util.find_spec("llm_guard")
    assert spec is not None and spec.submodule_search_locations
    root = Path(spec.submodule_search_locations[0])
    for name, path in (("llm_guard", root), ("llm_guard.input_scanners", root / "input_scanners")):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        sys.modules[name] = package
    name = "llm_guard.input_scanners.secrets"
    spec = importlib.util.spec_from_file_location(name, root / "input_scanners" / "secrets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.Secrets(redact_mode="all")


def setup_peers() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *PEER_PACKAGES], check=True)
    subprocess.run([*pip, "--no-deps", "llm-guard"], check=True)


# ----- main -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup-peers", action="store_true", help="create bench/.venv-guards")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--peer-input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_input:  # inside the peers' venv
        data = json.loads(Path(args.peer_input).read_text())
        print(json.dumps(run_peers(data)))
        return
    if args.setup_peers:
        setup_peers()
    rng = random.Random(20261201)
    data = {
        "corpora": corpora(rng),
        "shared": shared_set(),
        "own": own_set(rng),
        "secrets": secret_samples(rng),
    }
    sizes = {name: round(kb(texts), 1) for name, texts in data["corpora"].items()}
    ours = run_ours(data)
    peers: dict[str, Any] = {}
    python = PEER_VENV / "bin" / "python"
    if not args.no_peers and python.exists():
        path = ROOT / "bench" / ".pii_secrets_input.json"
        path.write_text(json.dumps(data))
        try:
            done = subprocess.run(
                [str(python), __file__, "--peer-input", str(path)],
                capture_output=True,
                text=True,
                timeout=3600,
                cwd=ROOT,
            )
            lines = done.stdout.strip().splitlines()
            peers = json.loads(lines[-1]) if lines else {"error": done.stderr[-2000:]}
        finally:
            path.unlink(missing_ok=True)
    elif not args.no_peers:
        peers = {"skipped": "no bench/.venv-guards; run with --setup-peers"}
    report(sizes, ours, peers)
    print(json.dumps({"kb": sizes, "ours": ours, "peers": peers}, separators=(",", ":")))


def report(sizes: dict[str, float], ours: dict[str, Any], peers: dict[str, Any]) -> None:
    presidio = peers.get("presidio", {})
    llm_guard = peers.get("llm_guard_secrets", {})
    print("ms/KB       " + "".join(f"{name:>16}" for name in sizes))
    print("KB          " + "".join(f"{v:>16}" for v in sizes.values()))
    for guard in ("pii", "secrets", "both"):
        row = ours["speed_ms_per_kb"]
        print(f"ours {guard:<7}" + "".join(f"{row[n][guard]:>16}" for n in sizes))
    for name, peer in (("presidio", presidio), ("llm-guard", llm_guard)):
        if "speed_ms_per_kb" in peer:
            print(
                f"{name:<12}" + "".join(f"{peer['speed_ms_per_kb'].get(n, '-'):>16}" for n in sizes)
            )
    for dataset in ("shared", "own"):
        print(
            f"\nP/R on the {dataset} set    ours"
            + ("        presidio" if "shared" in presidio else "")
        )
        for kind in (*ENTITIES, "all"):
            mine = ours[dataset][kind]
            line = f"  {kind:<14} P {mine['p']!s:>5} R {mine['r']!s:>5}"
            if dataset in presidio:
                theirs = presidio[dataset][kind]
                line += f"    P {theirs['p']!s:>5} R {theirs['r']!s:>5}"
            print(line)
    phone = ours["shared_phone_possible"]["phone"]
    print(f"  (phone_leniency=possible on the shared set: P {phone['p']} R {phone['r']})")
    print("\nfindings on benign text (ours):", ours["benign_findings"])
    if "benign_findings" in presidio:
        print("findings on benign text (presidio):", presidio["benign_findings"])
    print("secrets recall (ours):", ours["secrets_recall_all"], ours["secrets_recall"])
    if "secrets_recall" in llm_guard:
        print(
            "secrets recall (llm-guard):",
            llm_guard["secrets_recall_all"],
            llm_guard["secrets_recall"],
        )
        print("benign texts flagged (llm-guard):", llm_guard["benign_texts_flagged"])
    person = peers.get("ours_person", {})
    if "shared_person" in person:
        p = person["shared_person"]
        print(f"person (opt-in, spaCy small): P {p['p']} R {p['r']}, {person['ms_per_kb']} ms/KB")
    for name, peer in (("presidio", presidio), ("llm-guard", llm_guard), ("person", person)):
        if "error" in peer:
            print(f"{name}: {peer['error']}")


if __name__ == "__main__":
    main()
