"""A shadow release's answers side by side: for each mirrored request, what the stable arm
answered (what the user got) and what the candidate answered in its shadow.

    found = shadow_pairs(db, traces_db, release, limit=20)
    [pair.json() for pair in found]
    text_policy("support-answer", config.features["support-answer"])

Both arms' ledger rows carry the release id and share the request's trace id, so a pair is
the rows of one trace id: per arm its status, validation, latency and cost (summed over its
passes, as the release's signals count them). The answers' text is read only from where the
feature's telemetry policy already keeps it: the trace store's ``trace_texts``, redacted
before it was written and deleted at its retention. Where the policy keeps no text (a
``high`` risk tier's default) the pairs still have their metrics, and :func:`text_policy`
says why there is no text and how to keep it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bounded.config.schema import FeatureConfig
from bounded.errors import InvalidRequest
from bounded.releases.store import Release, ReleaseNotFound, ReleaseStore
from bounded.store.db import Database
from bounded.telemetry.config import stores_text

E10 = 1e10
MAX_LIMIT = 200
DASHBOARD_PAIRS = 5  # per shadow release on the releases page


@dataclass(slots=True)
class Answer:
    """One arm's answer to one request (every pass of it: a repair adds one)."""

    arm: str
    status: int = 0
    error_class: str | None = None
    validation: str | None = None  # the last pass's: passed | repaired | escalated | failed
    validation_failed: bool = False  # any pass failed (what the release signal counts)
    passes: int = 0
    latency_ms: float = 0.0
    cost_e10: int = 0
    deployment: str | None = None
    prompt_version: str | None = None
    text: str | None = None  # the redacted completion, where it is stored
    prompt: str | None = None  # the redacted prompt as the upstream got it

    def json(self, with_text: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arm": self.arm,
            "status": self.status,
            "error_class": self.error_class,
            "validation": self.validation,
            "validation_failed": self.validation_failed,
            "passes": self.passes,
            "latency_ms": round(self.latency_ms, 3),
            "cost_usd": self.cost_e10 / E10,
            "deployment": self.deployment,
            "prompt_version": self.prompt_version,
        }
        if with_text:
            out["text"] = self.text
            out["prompt"] = self.prompt
        return out


@dataclass(slots=True)
class Pair:
    trace_id: str
    ts: float
    stable: Answer | None = None  # None: the stable request wrote no ledger row
    shadow: Answer | None = None
    answers: dict[str, Answer] = field(default_factory=dict)

    def json(self, with_text: bool = True) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "ts": self.ts,
            "stable": None if self.stable is None else self.stable.json(with_text),
            "shadow": None if self.shadow is None else self.shadow.json(with_text),
        }


def text_policy(name: str, feature: FeatureConfig | None) -> dict[str, Any]:
    """Whether ``name`` keeps answer text, and what to do when it does not."""
    if feature is None:
        return {"stored": False, "note": f"feature {name!r} is no longer in bounded.yaml"}
    if stores_text(feature.risk_tier, feature.telemetry):
        days = feature.telemetry.text_retention_days
        return {
            "stored": True,
            "note": f"redacted text kept {days:g} days by the feature's telemetry policy; "
            "a pair without text was not sampled, has expired, or is not written yet",
        }
    why = (
        "risk tier high stores no text by default"
        if feature.telemetry.store_text is None
        else "telemetry.store_text is false"
    )
    return {
        "stored": False,
        "note": f"text is not stored by the feature's policy ({why}): only metrics are "
        f"compared. To keep redacted answers, set features.{name}.telemetry.store_text: "
        "true in bounded.yaml (new requests only)",
    }


def shadow_pairs(
    db: Database,
    traces: Database | None,
    release: Release | str,
    *,
    limit: int = 20,
    differ: bool = False,
) -> list[Pair]:
    """The newest ``limit`` mirrored requests of a release, newest first; ``traces``: the
    trace store (None: none yet, so no text). ``differ``: only those where one arm failed
    validation or erred and the other did not (what a reviewer reads first)."""
    release_id = release if isinstance(release, str) else release.id
    limit = max(1, min(int(limit), MAX_LIMIT))
    newest = db.execute(_DIFFER if differ else _NEWEST, (release_id, limit))
    if not newest:
        return []
    pairs = {r["trace_id"]: Pair(r["trace_id"], float(r["first_ts"])) for r in newest}
    marks = ", ".join("?" for _ in pairs)
    rows = db.execute(
        "SELECT trace_id, arm, ts, status, error_class, validation, latency_ms, cost_e10,"
        " deployment, prompt_version FROM ledger WHERE release_id = ? AND operation = 'chat'"
        f" AND arm IN ('stable', 'shadow') AND trace_id IN ({marks}) ORDER BY ts",
        (release_id, *pairs),
    )
    for row in rows:
        pair = pairs[row["trace_id"]]
        answer = pair.answers.setdefault(row["arm"], Answer(row["arm"]))
        answer.passes += 1
        # What the request ended with is its last pass; the sums are over every pass.
        answer.status = int(row["status"])
        answer.error_class = row["error_class"]
        answer.validation = row["validation"]
        answer.validation_failed = answer.validation_failed or row["validation"] == "failed"
        answer.latency_ms += float(row["latency_ms"])
        answer.cost_e10 += int(row["cost_e10"])
        answer.deployment = row["deployment"] or answer.deployment
        answer.prompt_version = row["prompt_version"] or answer.prompt_version
    if traces is not None:
        _add_texts(traces, pairs)
    for pair in pairs.values():
        pair.stable = pair.answers.get("stable")
        pair.shadow = pair.answers.get("shadow")
    return sorted(pairs.values(), key=lambda p: p.ts, reverse=True)


_NEWEST = (
    "SELECT trace_id, MIN(ts) AS first_ts FROM ledger WHERE release_id = ?"
    " AND arm = 'shadow' AND operation = 'chat' GROUP BY trace_id"
    " ORDER BY first_ts DESC LIMIT ?"
)


def _either(arm: str, test: str) -> str:
    return f"MAX(CASE WHEN arm = '{arm}' AND {test} THEN 1 ELSE 0 END)"


# A request failed validation if any of its passes did, erred if any row has a 5xx: the
# same per-request reading as the release's signals.
_DIFFER = (
    "SELECT trace_id, MIN(CASE WHEN arm = 'shadow' THEN ts END) AS first_ts FROM ledger"
    " WHERE release_id = ? AND operation = 'chat' AND arm IN ('stable', 'shadow')"
    " GROUP BY trace_id HAVING SUM(CASE WHEN arm = 'shadow' THEN 1 ELSE 0 END) > 0"
    f" AND ({_either('stable', 'validation = ' + repr('failed'))}"
    f" <> {_either('shadow', 'validation = ' + repr('failed'))}"
    f" OR {_either('stable', 'status >= 500')} <> {_either('shadow', 'status >= 500')})"
    " ORDER BY first_ts DESC LIMIT ?"
)


def _add_texts(traces: Database, pairs: dict[str, Pair]) -> None:
    """Each arm's stored (redacted) text: the trace row of that arm under the trace id."""
    marks = ", ".join("?" for _ in pairs)
    rows = traces.execute(
        "SELECT t.trace_id, t.arm, x.prompt, x.completion FROM traces t"
        " JOIN trace_texts x ON x.span_id = t.span_id"
        f" WHERE t.trace_id IN ({marks}) AND x.expires_at > ? ORDER BY t.ts",
        (*pairs, time.time()),
    )
    for row in rows:  # a client that reuses a trace id: the latest of each arm wins
        answer = pairs[row["trace_id"]].answers.get(row["arm"] or "stable")
        if answer is not None:
            answer.text = row["completion"]
            answer.prompt = row["prompt"]


def pairs_report(
    db: Database,
    traces: Database | None,
    release: Release,
    feature: FeatureConfig | None,
    *,
    limit: int = 20,
    with_text: bool = True,
    differ: bool = False,
) -> dict[str, Any]:
    """What ``bounded release answers`` and ``GET /v1/releases/{feature}/pairs`` return."""
    policy = text_policy(release.feature, feature)
    found = shadow_pairs(db, traces, release, limit=limit, differ=differ)
    return {
        "object": "list",
        "feature": release.feature,
        "release": {
            "id": release.id,
            "mode": release.mode,
            "state": release.state,
            "share": release.share,
            "stable_prompt": release.stable_prompt,
            "candidate_prompt": release.candidate_prompt,
            "candidate_route": None
            if release.candidate_route is None
            else list(release.candidate_route.targets),
        },
        "text_policy": policy,
        "only_differing": differ,
        "data": [p.json(with_text) for p in found],
    }


def pick_release(store: ReleaseStore, feature: str, release_id: str | None = None) -> Release:
    """The shadow release to read: ``release_id``, else the feature's newest shadow."""
    if release_id is not None:
        release = store.get(release_id)
        if release.feature != feature:
            raise ReleaseNotFound(
                f"release {release_id!r} is of {release.feature!r}, not {feature!r}",
                param="release",
            )
        if release.mode != "shadow":
            raise InvalidRequest(_CANARY.format(release_id), param="release")
        return release
    for release in store.latest(feature, limit=50):
        if release.mode == "shadow":
            return release
    raise ReleaseNotFound(
        f"{feature!r} has had no shadow release; answers are paired only in a shadow "
        f"(start one with `bounded release start {feature} --candidate V --shadow 100%`)",
        param="feature",
    )


_CANARY = (
    "release {} is a canary: each user got one arm, so there are no pairs of answers to "
    "one request; compare its arms with `bounded release status`"
)


def add_to_dashboard(
    rows: list[dict[str, Any]],
    db: Database,
    traces: Callable[[], Database | None],
    features: Mapping[str, FeatureConfig],
    *,
    limit: int = DASHBOARD_PAIRS,
) -> None:
    """The releases page's rows (``{"row": releases row, ...}``): each shadow's newest
    pairs as ``pairs`` and its ``text_policy``. The trace store is opened only for them."""
    for entry in rows:
        release = entry["row"]
        if release["mode"] != "shadow":
            continue
        entry["text_policy"] = text_policy(release["feature"], features.get(release["feature"]))
        entry["pairs"] = shadow_pairs(db, traces(), release["id"], limit=limit)
