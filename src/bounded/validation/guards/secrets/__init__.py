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

Modules: ``rules`` (the known formats), ``assigned`` (named values), ``randomness`` (entropy),
``pem`` (PEM blocks), ``detector`` (the detector and the registry's factory).
"""

from bounded.validation.guards.secrets.detector import SecretsDetector, build
from bounded.validation.guards.secrets.randomness import entropy, entropy_threshold
from bounded.validation.guards.secrets.rules import KINDS, RULES, Rule

__all__ = ["KINDS", "RULES", "Rule", "SecretsDetector", "build", "entropy", "entropy_threshold"]
