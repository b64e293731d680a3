"""The background evaluator: every running release, looked at again and again, decided
when the sequential test allows it. Never on the request path.

    evaluator = Evaluator(store, lambda: gateway.runtime.config)
    evaluator.evaluate_once()                  # [(release, verdict), ...]; ends what it may
    task = asyncio.create_task(evaluator.run_forever(on_change=cache.invalidate))

Every replica runs one. They read the same ledger and reach the same verdicts; the store
lets only one of them end a release (see :meth:`ReleaseStore.end`), so a decision happens
once and is recorded once, in the audit log with its evidence: each signal's means, sample
counts, interval and margin at the moment of the decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bounded.config.schema import BoundedConfig
from bounded.releases.decide import Verdict, decide
from bounded.releases.settings import DEFAULT_RULES, ReleaseRules
from bounded.releases.signals import cost_by_arm, read_arms
from bounded.releases.store import PROMOTED, ROLLED_BACK, Release, ReleaseStore

log = logging.getLogger("bounded.releases")

ACTOR = "bounded-evaluator"
IDLE_CHECK_S = 5.0  # how often to look for a release when none runs


def rules_for(config: BoundedConfig, feature: str) -> ReleaseRules:
    spec = config.features.get(feature)
    if spec is None or spec.release is None:
        return DEFAULT_RULES
    return spec.release


class Evaluator:
    def __init__(self, store: ReleaseStore, config: Callable[[], BoundedConfig]):
        self.store = store
        self.config = config
        self.looks = 0

    def evaluate(self, release: Release) -> Verdict:
        rules = rules_for(self.config(), release.feature)
        if release.mode == "shadow" and "outcome_success" in rules.signals:
            # No user saw a shadow answer: there is no outcome to compare.
            signals = tuple(s for s in rules.signals if s != "outcome_success") or ("error_rate",)
            rules = rules.model_copy(update={"signals": signals})
        stable, candidate = read_arms(self.store.db, release)
        return decide(stable, candidate, rules)

    def evaluate_once(self) -> list[tuple[Release, Verdict]]:
        """Look at every running release once; end those the test decides."""
        seen: list[tuple[Release, Verdict]] = []
        config = self.config()
        for release in self.store.all_running():
            if release.feature not in config.features:
                continue  # a feature removed from the file: a person decides
            verdict = self.evaluate(release)
            self.looks += 1
            seen.append((release, verdict))
            if verdict.action in ("promote", "rollback"):
                state = PROMOTED if verdict.action == "promote" else ROLLED_BACK
                evidence = {
                    "automatic": True,
                    "verdict": verdict.as_dict(),
                    "cost_usd_by_arm": cost_by_arm(self.store.db, release),
                }
                ended = self.store.end(release.id, state, actor=ACTOR, evidence=evidence)
                if ended is not None:
                    log.warning(
                        "release %s of %s: %s (%s)",
                        release.id,
                        release.feature,
                        state,
                        verdict.reason,
                    )
        return seen

    def interval(self) -> float:
        config = self.config()
        running = [f for f in config.features.values() if f.release is not None]
        every = [f.release.evaluate_every_s for f in running if f.release is not None]
        return min([DEFAULT_RULES.evaluate_every_s, *every]) if every else IDLE_CHECK_S

    async def run_forever(self, on_change: Callable[[], None] | None = None) -> None:
        while True:
            try:
                seen = await asyncio.to_thread(self.evaluate_once)
                if on_change is not None and any(v.action != "continue" for _, v in seen):
                    on_change()
            except Exception:  # a bad look must not stop the next one
                log.exception("release evaluation failed; trying again")
            await asyncio.sleep(self.interval())
