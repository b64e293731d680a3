"""Prompt injection detection, the text side: normalisation, words, and the curated phrase
patterns whose matches the model weighs (:mod:`bounded.validation.guards.injection` scores
them). Kept apart so the pattern families, the longest part of the detector, can be read,
tested and trained against (``scripts/train_injection.py``) without the model around them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# Zero-width and soft-hyphen characters that split a trigger word without showing.
_INVISIBLE = dict.fromkeys(
    (0x00AD, 0x034F, 0x180E, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0x2061, 0xFEFF),
    None,
)
WORD = re.compile(r"[^\W_]+")  # a word: a run of characters for which str.isalnum() holds

_INVISIBLE_RX = re.compile("[" + "".join(map(chr, _INVISIBLE)) + "]")
# Every ASCII character that is not a letter or digit, as a space (bytes.translate table).
_ASCII_SEPARATORS = bytes(c if chr(c).isalnum() or c >= 0x80 else 0x20 for c in range(256))
_SEPARATOR = re.compile(r"[\W_]")  # one character that is not a letter or digit
_FEW_SEPARATORS = 16  # distinct ones; past that one regex pass beats a str.replace each


def normalise(text: str) -> str:
    """NFKC (fullwidth and styled letters become plain), invisible characters dropped,
    case folded: the form both the patterns and the model read."""
    if text.isascii():  # NFKC keeps ASCII as it is, and no invisible character is ASCII
        return text.casefold()
    return _INVISIBLE_RX.sub("", unicodedata.normalize("NFKC", text)).casefold()


def separated(norm: str) -> str:
    r"""``norm`` with every character that is not a letter or digit replaced by a space: the
    same length, and its ``split()`` is exactly ``WORD.findall(norm)`` at the same offsets
    ([^\W_] is str.isalnum(), and no such character is whitespace), without a regex pass
    in the common cases."""
    if norm.isascii():
        return norm.encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii")
    seps = [ch for ch in set(norm) if not ch.isalnum() and ch != " "]
    if len(seps) > _FEW_SEPARATORS:
        return _SEPARATOR.sub(" ", norm)
    for ch in seps:
        norm = norm.replace(ch, " ")
    return norm


def words(text: str) -> list[str]:
    return separated(normalise(text)).split()


# -- curated patterns ---------------------------------------------------------------------
# Each pattern runs over the words joined by single spaces, so punctuation, line breaks and
# case don't matter. ``_G`` allows a few words in between. A weight is added (in logit
# units) at the word where the match starts. Kept to phrases whose benign uses are rare in
# long documents: what an attack says to the model about the model's instructions.
_G = r"(?:[^ ]+ ){0,4}"
_G2 = r"(?:[^ ]+ ){0,2}"
_PRIOR = (
    r"(?:previous|prior|above|preceding|earlier|former|initial|original|foregoing|old|all|any"
    r"|every|your|the|these|those|this|my|system|developer|last|first|current|other)"
)
# "instructions" and "prompt" as typed in a hurry: instrucions, instuctions, promt.
_INSTR = r"(?:instr[^ ]*|in[^ ]{1,3}ctions?|promp?ts?|guide lines)"
_RULES = (
    rf"(?:{_INSTR}|directions?|directives?|prompts?|rules|guidelines|commands?|orders"
    r"|programming|guardrails|restrictions|constraints|policies|context|messages|input"
    r"|conversation|training|safeguards|limitations|filters|requests?|tasks?|words|sentences)"
)
_OWN = r"(?:your|the above|above|previous|prior|initial|original|secret|hidden|system|pre|internal)"
PATTERNS: tuple[tuple[str, float, str], ...] = (
    # (name, weight in logit units, regex over the words joined by single spaces)
    (
        "override",
        3.5,
        r"(?:ignore|disregard|forget|neglect|overlook|override|bypass|discard|abandon|dismiss"
        r"|set aside|pay no attention to|do not follow|don t follow|stop following|cancel"
        rf"|erase|nevermind|never mind) {_G}{_PRIOR} {_G2}{_RULES}",
    ),
    (
        "override_what",
        2.5,
        r"(?:ignore|disregard|forget) (?:what i (?:just )?(?:said|told you|wrote)|the following"
        r"|the rest|everything (?:else|before|above|that came before)"
        r"|all (?:of )?(?:that|this|the above)"
        r"|everything|that|about (?:it|that|everything))",
    ),
    (
        "override_de",
        3.5,
        r"(?:ignoriere|ignorieren|ignorier|vergiss|vergessen|missachte|missachten|überspringe"
        r"|vernachlässige) (?:[^ ]+ ){0,5}(?:anweisungen|anweisung|instruktionen|befehle|regeln"
        r"|vorgaben|aufgaben|alles|informationen|anfragen|vorherigen|obigen)",
    ),
    (
        "override_fr_es_it",
        3.0,
        r"(?:ignore[zr]?|oublie[zr]?|ignora|ignorar|ignorate|olvida|olvidar|dimentica)"
        r" (?:[^ ]+ ){0,4}(?:instructions|consignes|règles|instrucciones|reglas|órdenes"
        r"|istruzioni|regole|précédent(?:e|es|s)?|anteriores?|precedenti)",
    ),
    (
        "new_instructions",
        2.0,
        r"(?:new|updated|real|true|actual|revised|secret|hidden|additional) (?:instructions|rules"
        r"|directive|orders|system prompt|task is|objective is)",
    ),
    (
        "from_now_on",
        1.5,
        r"(?:from now on|henceforth|starting now|instead|now) (?:you (?:will|must|shall|are|re)"
        r"|your (?:new )?(?:task|job|goal|role|purpose) is|act|pretend|respond|answer|reply|only)",
    ),
    (
        "reveal_prompt",
        3.0,
        r"(?:reveal|show|print|output|repeat|display|tell me|give me|share|spell|write out|leak"
        r"|list|summari[sz]e|translate|format|convert|rewrite|encode|paraphrase|recite|dump"
        r"|expose|disclose|explain|describe|provide|change|replace|overrule"
        r"|what (?:is|are|was|were)) "
        rf"{_G2}{_OWN} {_G2}(?:system prompt|{_INSTR}|rules|password|access code|secret"
        r"|guidelines|directives|words|text|message|configuration|pre prompt|preprompt)",
    ),
    (
        "above_instructions",
        2.0,
        r"(?:instructions|prompt|words|text|rules|everything) (?:above|so far|before this"
        r"|you were given|you have been given|you received|you were told)",
    ),
    (
        "password",
        2.0,
        r"(?:what is|what s|tell me|give me|reveal|spell|say|share|print|write|hint)"
        r" (?:[^ ]+ ){0,3}(?:password|passcode|passphrase|secret word|secret key|access code)",
    ),
    (
        "ask_instructions",
        1.5,
        r"your (?:[^ ]+ )?(?:instr[^ ]*|in[^ ]{1,3}ctions?)|(?:instr[^ ]*|in[^ ]{1,3}ctions?)"
        r" (?:you (?:are|were|have been|re) (?:given|following|told)|given to you)",
    ),
    ("system_prompt", 1.5, r"(?:system|initial|original|hidden|secret) (?:prompt|instructions)"),
    (
        "you_are_now",
        2.5,
        r"you are (?:now|no longer|going to (?:act|pretend|be|play|pose)|free|unrestricted"
        r"|unfiltered"
        r"|jailbroken|dan)|you will (?:now )?(?:act|pose|pretend|roleplay|simulate|become)"
        r"|(?:act|pretend|pose) as (?:if you (?:are|were|have)|an? (?:ai|chatbot|assistant|model))",
    ),
    (
        "unrestricted",
        2.5,
        r"(?:act as|pretend (?:to be|you are)|roleplay as|simulate|you will be|become)"
        r" (?:[^ ]+ ){0,6}(?:unrestricted|unfiltered|uncensored|amoral|unethical|unbound"
        r"|without (?:any )?(?:restrictions|limits|filters|rules|ethics|morals|censorship)"
        r"|no (?:restrictions|limits|filters|rules|ethics|morals|guidelines|boundaries))",
    ),
    (
        "no_restrictions",
        2.0,
        r"(?:no|without|free of|free from|not bound by|break free of|freed from|beyond|ignore"
        r"|lacks) (?:any |all |the )?(?:ethical|moral|content|safety|openai|usual|typical)?"
        r" ?(?:restrictions"
        r"|limitations|filters|guidelines|policies|policy|censorship|boundaries|confines|morals"
        r"|ethics)",
    ),
    (
        "jailbreak_names",
        3.0,
        r"(?:do anything now|developer mode|dev mode|jailbreak|jailbroken|jailbreaking"
        r"|evil confidant"
        r"|anti dan|betterdan|god mode|sudo mode|unfiltered mode|dan (?:mode|prompt|jailbreak)"
        r"|(?:you are|as|called|named|play|be) dan)",
    ),
    (
        "never_refuse",
        2.0,
        r"(?:stay in character|break character|never refuse|cannot refuse|can t refuse"
        r"|must not refuse"
        r"|never decline|will not refuse|won t refuse|not allowed to refuse|never say no"
        r"|without (?:refusing|refusal|warnings?|disclaimers|censorship)|as an ai language model"
        r"|stay in [^ ]+ mode|remain in [^ ]+ mode)",
    ),
    ("policy", 1.5, r"openai (?:s )?(?:content )?polic(?:y|ies)|content polic(?:y|ies)"),
    ("access_granted", 2.0, r"access granted"),
    (
        "prompt_boundary",
        2.0,
        r"(?:end of (?:the )?(?:prompt|instructions|system prompt|user input)"
        r"|(?:end|begin|start) (?:user input|system prompt|instructions|distractor|ambiguity"
        r"|access code|new instructions)|system override|admin override|developer override)",
    ),
    (
        "obey_me",
        1.5,
        r"(?:you must|you will|you have to) (?:obey|comply|follow my|do whatever|answer every)"
        r"|do whatever i (?:say|ask|tell)",
    ),
)
# Each match must start and end at word boundaries of the joined text.
_PATTERNS = tuple(
    (name, weight, re.compile(rf"(?<![^ ])(?:{rx})(?![^ ])")) for name, weight, rx in PATTERNS
)
PATTERN_NAMES = tuple(name for name, _, _ in PATTERNS)

# The words a match of each family can start with: every branch's first word. A match starts
# at a word, so a family is only tried where one of these stands, which most benign text has
# few of (scanning every family over the whole text was most of the detector's cost). Keep in
# step with PATTERNS: tests/validation/test_injection.py generates matches of every branch and
# checks that pattern_hits finds them as a plain scan of each family does. ask_instructions
# also starts at any word of the form instr... or in?ctions (``_INSTR_WORD``).
FIRST_WORDS: dict[str, str] = {
    "override": "ignore disregard forget neglect overlook override bypass discard abandon"
    " dismiss set pay do don stop cancel erase nevermind never",
    "override_what": "ignore disregard forget",
    "override_de": "ignoriere ignorieren ignorier vergiss vergessen missachte missachten"
    " überspringe vernachlässige",
    "override_fr_es_it": "ignore ignorez ignorer oublie oubliez oublier ignora ignorar ignorate"
    " olvida olvidar dimentica",
    "new_instructions": "new updated real true actual revised secret hidden additional",
    "from_now_on": "from henceforth starting instead now",
    "reveal_prompt": "reveal show print output repeat display tell give share spell write leak"
    " list summarise summarize translate format convert rewrite encode paraphrase recite dump"
    " expose disclose explain describe provide change replace overrule what",
    "above_instructions": "instructions prompt words text rules everything",
    "password": "what tell give reveal spell say share print write hint",
    "ask_instructions": "your",
    "system_prompt": "system initial original hidden secret",
    "you_are_now": "you act pretend pose",
    "unrestricted": "act pretend roleplay simulate you become",
    "no_restrictions": "no without free not break freed beyond ignore lacks",
    "jailbreak_names": "do developer dev jailbreak jailbroken jailbreaking evil anti betterdan"
    " god sudo unfiltered dan you as called named play be",
    "never_refuse": "stay break never cannot can must will won not without as remain",
    "policy": "openai content",
    "access_granted": "access",
    "prompt_boundary": "end begin start system admin developer",
    "obey_me": "you do",
}
_INSTR_WORD = re.compile(r"in(?:str[^ ]*|[^ ]{1,3}ctions?) ")  # preceded by a space: a word
_ASK = PATTERN_NAMES.index("ask_instructions")
_FIRST: dict[str, tuple[int, ...]] = {}
for _f, _name in enumerate(PATTERN_NAMES):
    for _w in dict.fromkeys(FIRST_WORDS[_name].split()):
        _FIRST[_w] = (*_FIRST.get(_w, ()), _f)


def pattern_hits(tokens: Sequence[str]) -> list[tuple[int, str]]:
    """(word index where a match starts, pattern name) for every pattern match: for each
    family in order, its non-overlapping matches left to right, as ``finditer`` of the family
    over the words joined by single spaces finds them."""
    present = _FIRST.keys() & tokens  # the first words that occur: few in most benign text
    joined = " ".join(tokens) + " "
    instr = [
        m.start()
        for m in _INSTR_WORD.finditer(joined)
        if m.start() == 0 or joined[m.start() - 1] == " "
    ]
    if not present and not instr:
        return []
    # Where each family can start: the offsets in ``joined`` of its first words.
    places: dict[int, list[int]] = {_ASK: instr} if instr else {}
    padded = " " + joined  # " word " at padded[at:] is the word at joined[at:]
    for w in present:
        needle = " " + w + " "
        step = len(needle) - 1
        offsets = []
        at = padded.find(needle)
        while at >= 0:
            offsets.append(at)
            at = padded.find(needle, at + step)
        for f in _FIRST[w]:
            if f in places:
                places[f] += offsets
            else:
                places[f] = offsets.copy()
    hits: list[tuple[int, str]] = []
    for f in sorted(places):
        name, _, rx = _PATTERNS[f]
        end = 0
        for pos in sorted(places[f]):
            if pos < end:  # inside the previous match: finditer would not look here
                continue
            m = rx.match(joined, pos)
            if m is not None:
                hits.append((joined.count(" ", 0, pos), name))  # the word's index
                end = m.end()
    return hits


def position_features(tokens: Sequence[str], i: int) -> tuple[str, str | None]:
    """The model's features at word ``i``: the word, and the pair it starts."""
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    return tokens[i], (tokens[i] + " " + nxt) if nxt is not None else None
