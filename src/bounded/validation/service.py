"""Guards as a service: run a policy over a text and say what it would do.

    report = check_text("mail a@b.example", [GuardSpec(kind="pii", action="redact")])
    report["action"]       # "redact"; report["text"] is the text as a model would get it

Used by ``POST /v1/guards/check`` and ``bounded guard check``, so users can try a policy
before they turn it on. Findings carry kinds, offsets and scores, never the values; the
offsets are into the text as each guard saw it (after the redactions of guards before it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bounded.validation.config import GuardSpec
from bounded.validation.enforce import GuardSet, detector_for
from bounded.validation.guards.base import ScanContext

# The strongest action found decides what the policy does with the text.
_RANK = {"allow": 0, "log": 1, "redact": 2, "drop": 3, "escalate": 4, "block": 5}


def check_text(
    text: str,
    specs: Sequence[GuardSpec],
    *,
    place: str = "input",
    risk_tier: str = "low",
    sources: Sequence[str] = (),
) -> dict[str, Any]:
    from bounded.validation.guards.redact import Vault

    guards = GuardSet(tuple((spec, detector_for(spec)) for spec in specs))
    context = ScanContext(place, risk_tier, tuple(sources))  # type: ignore[arg-type]
    outcome = guards.run(text, context, Vault())
    fired = {id(hit.spec): hit for hit in outcome.hits}
    results = []
    for spec in specs:
        hit = fired.get(id(spec))
        results.append(
            {
                "guard": spec.kind,
                "action": spec.action,
                "triggered": hit is not None,
                "score": None if hit is None or hit.score is None else round(hit.score, 4),
                "findings": [] if hit is None else [f.as_json() for f in hit.findings],
            }
        )
    action = max((h.spec.action for h in outcome.hits), key=_RANK.__getitem__, default="allow")
    return {
        "object": "guards.check",
        "place": place,
        "action": action,
        "allowed": action not in ("block", "drop", "escalate"),
        # The text as a model would get it, when the policy would send it changed; never
        # the original back (a refused text may hold the very secret it was refused for).
        "text": outcome.text if action == "redact" and outcome.text != text else None,
        "results": results,
    }
