"""Guards at work: a feature's detectors built once, run over text, their verdict applied.

    guards = FeatureGuards.build(feature)          # at start-up and on reload
    outcome = guards.input.run(text, ScanContext("input", "high"), vault)
    if outcome.blocked: ...                        # refuse
    text = outcome.text                            # redacted where a guard said so

A detector that raises is a bug, not a verdict. Whether the text then passes (fails open)
or the request is refused (fails closed) is the guard's ``on_error``; by default the guards
that keep data out of models and logs (pii, secrets) fail closed and the scoring ones
(injection, groundedness) fail open, logged either way.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bounded.errors import BoundedError
from bounded.text_memo import TextMemo
from bounded.validation.config import GuardSpec, ToolsConfig
from bounded.validation.guards import registry
from bounded.validation.guards.base import Detector, Finding, ScanContext
from bounded.validation.output import SchemaCheck
from bounded.validation.policy import effective_policy

if TYPE_CHECKING:
    from bounded.config.schema import FeatureConfig
    from bounded.validation.guards.redact import Vault

log = logging.getLogger("bounded.validation")

FAILS_CLOSED = frozenset({"pii", "secrets"})


class GuardUnavailable(BoundedError):
    """A guard that fails closed could not check the text: refuse rather than let it by."""

    status = 503
    default_code = "guard_failed"


_cache_lock = threading.Lock()
_detectors: dict[tuple[str, str], Detector] = {}


def detector_for(spec: GuardSpec) -> Detector:
    """Detectors are shared by every feature and reload with the same options: a loaded
    model or compiled pattern set is built once per process."""
    options = spec.detector_options()
    key = (spec.kind, json.dumps(options, sort_keys=True, default=str))
    with _cache_lock:
        found = _detectors.get(key)
        if found is None:
            found = _detectors[key] = registry.build(spec.kind, options)
        return found


@dataclass(frozen=True)
class Hit:
    """What one guard found in one text, and what its policy does about it."""

    spec: GuardSpec
    findings: tuple[Finding, ...]
    score: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "guard": self.spec.kind,
            "action": self.spec.action,
            "findings": [f.as_json() for f in self.findings],
        }
        if self.score is not None:
            out["score"] = round(self.score, 4)
        return out


@dataclass
class Outcome:
    text: str
    hits: list[Hit] = field(default_factory=list)
    blocked: Hit | None = None
    dropped: bool = False  # a retrieved chunk to leave out
    escalate: Hit | None = None

    @property
    def kinds(self) -> list[str]:
        return sorted({f.kind for hit in self.hits for f in hit.findings})


@dataclass(frozen=True)
class GuardSet:
    """The guards of one place (input, retrieved or output), in order."""

    guards: tuple[tuple[GuardSpec, Detector], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.guards)

    @property
    def restores(self) -> bool:
        return any(spec.restore for spec, _ in self.guards)

    def run(self, text: str, context: ScanContext, vault: Vault | None = None) -> Outcome:
        outcome = Outcome(text)
        for spec, detector in self.guards:
            findings = _scan(spec, detector, outcome.text, context)
            hit = _judge(spec, findings)
            if hit is None:
                continue
            outcome.hits.append(hit)
            action = spec.action
            if action == "block":
                outcome.blocked = outcome.blocked or hit
            elif action == "drop":
                outcome.dropped = True
            elif action == "escalate":
                outcome.escalate = outcome.escalate or hit
            elif action == "redact" and vault is not None:
                from bounded.validation.guards.redact import redact

                spans = [f for f in hit.findings if f.end > f.start]
                if spans:
                    outcome.text = redact(outcome.text, spans, vault)
        return outcome


def _scan(spec: GuardSpec, detector: Detector, text: str, context: ScanContext) -> list[Finding]:
    try:
        return detector.scan(text, context)
    except Exception as exc:
        closed = spec.on_error == "closed" or (spec.on_error is None and spec.kind in FAILS_CLOSED)
        log.exception("guard %s failed on a %d-character text", spec.kind, len(text))
        if closed:
            raise GuardUnavailable(
                f"guard {spec.kind!r} could not check the {context.place} text "
                f"({type(exc).__name__}); the request is refused rather than let through"
            ) from None
        return []


def _judge(spec: GuardSpec, findings: list[Finding]) -> Hit | None:
    """Which findings count: a score against the guard's threshold or minimum, else all."""
    if not findings:
        return None
    whole = [f for f in findings if f.start == f.end == 0]
    score = whole[0].score if whole else None
    if spec.min_score is not None and score is not None:
        # Groundedness-style: the text is fine at or above the minimum.
        return Hit(spec, tuple(findings), score) if score < spec.min_score else None
    if spec.threshold is not None and score is not None and score < spec.threshold:
        return None
    return Hit(spec, tuple(findings), score)


@dataclass(frozen=True)
class FeatureGuards:
    """Everything a feature checks, built once per runtime: guards by place, the output
    schema, the tool policy, and what to do when an answer fails."""

    input: GuardSet = GuardSet()
    retrieved: GuardSet = GuardSet()
    output: GuardSet = GuardSet()
    tools: ToolsConfig | None = None
    risk_tier: str = "low"
    schema: SchemaCheck | None = None
    on_fail: str = "repair"
    max_repairs: int = 0
    cascade: bool = False
    groundedness: GuardSpec | None = None  # scored by the validate stage, not as a guard
    # Client texts the input guards found nothing in, by content (a system prompt, a chat's
    # history, sent again with every request): scanned once. Only when every input guard is
    # built in, whose verdict depends on the text alone; None otherwise.
    clean_inputs: TextMemo[bool] | None = field(default=None, compare=False)
    # Retrieved chunks the retrieved guards found nothing in: a collection's chunks come
    # back for many requests, and their text only changes with a re-sync (a new text).
    clean_retrieved: TextMemo[bool] | None = field(default=None, compare=False)

    @property
    def empty(self) -> bool:
        return not (self.input or self.retrieved or self.checks_output)

    @property
    def checks_output(self) -> bool:
        return bool(self.output or self.tools or self.schema or self.groundedness)

    @classmethod
    def build(cls, feature: FeatureConfig) -> FeatureGuards:
        policy = effective_policy(feature)

        def guard_set(specs: tuple[GuardSpec, ...]) -> GuardSet:
            return GuardSet(tuple((spec, detector_for(spec)) for spec in specs))

        output = feature.output
        schema = output.schema_ if output is not None else None
        cascade = feature.route.strategy == "cascade"
        return cls(
            guard_set(policy.input),
            guard_set(policy.retrieved),
            guard_set(tuple(s for s in policy.output if s.kind != "groundedness")),
            policy.tools,
            feature.risk_tier,
            SchemaCheck(schema) if isinstance(schema, dict) else None,
            # A cascade's failing answer goes up to the next target, not back for repair.
            "escalate" if cascade and output is None else (output.on_fail if output else "block"),
            output.max_repairs if output else 0,
            cascade,
            next((s for s in policy.output if s.kind == "groundedness"), None),
            _clean_memo(policy.input),
            _clean_memo(policy.retrieved),
        )


def _clean_memo(specs: tuple[GuardSpec, ...]) -> TextMemo[bool] | None:
    """A memo of clean texts, if every guard is a built-in one (a kind registered by the
    user may keep state or call out, so its verdicts are not remembered)."""
    if not specs or any(not registry.is_builtin(spec.kind) for spec in specs):
        return None
    return TextMemo()
