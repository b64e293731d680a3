"""Releases in the store (tables from migration 0007), so every replica sees the same ones.

    releases = ReleaseStore(db)
    r = releases.start("support-answer", mode="canary", share=0.05, candidate_prompt=4,
                       route=None, actor="ana")
    releases.running("support-answer")            # the one in progress, or None
    releases.end(r.id, "rolled_back", actor="evaluator", evidence={...})

A feature has at most one release running. Ending one is a single transaction that moves
everything a user would notice together: the release's state (which arm serves traffic),
the prompt's ``production`` label (to the candidate on promote, back to the stable version
on rollback), a promoted route, both generation counters (so every replica's cache drops
what it holds) and the audit entry with its evidence. The ``UPDATE ... WHERE state =
'running'`` that opens it decides races: when two replicas' evaluators reach a verdict at
the same moment, one ends the release and the other finds nothing left to end.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from bounded.audit.log import record_in
from bounded.config.schema import RouteConfig
from bounded.errors import InvalidRequest, NotFound
from bounded.prompts.store import CANDIDATE, PRODUCTION, PromptStore
from bounded.store.db import Database

RUNNING, PROMOTED, ROLLED_BACK = "running", "promoted", "rolled_back"
MODES = ("shadow", "canary")


class ReleaseNotFound(NotFound):
    default_code = "release_not_found"


class ReleaseConflict(InvalidRequest):
    status = 409
    default_code = "release_conflict"


@dataclass(frozen=True, slots=True)
class Release:
    id: str
    feature: str
    mode: str  # shadow | canary
    share: float  # 0..1 of traffic: mirrored (shadow) or served by the candidate (canary)
    state: str  # running | promoted | rolled_back
    candidate_prompt: int | None
    stable_prompt: int | None
    candidate_route: RouteConfig | None
    started_at: float
    started_by: str
    ended_at: float | None = None
    ended_by: str | None = None
    decision: dict[str, Any] | None = None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "feature": self.feature,
            "mode": self.mode,
            "share": self.share,
            "state": self.state,
            "candidate_prompt": self.candidate_prompt,
            "stable_prompt": self.stable_prompt,
            "candidate_route": None
            if self.candidate_route is None
            else self.candidate_route.model_dump(mode="json"),
            "started_at": self.started_at,
            "started_by": self.started_by,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "decision": self.decision,
        }


@dataclass(frozen=True, slots=True)
class PromotedRoute:
    route: RouteConfig
    release_id: str
    updated_at: float


class ReleaseStore:
    def __init__(self, db: Database):
        self.db = db
        self.prompts = PromptStore(db)

    # -- writes ------------------------------------------------------------------------

    def start(
        self,
        feature: str,
        *,
        mode: str,
        share: float,
        candidate_prompt: int | None,
        route: RouteConfig | None,
        actor: str,
        gate: dict[str, Any] | None = None,
    ) -> Release:
        if mode not in MODES:
            raise InvalidRequest(f"mode is shadow or canary, not {mode!r}", param="mode")
        if not 0 < share <= 1:
            raise InvalidRequest(f"share must be above 0% and at most 100%, not {share:.2%}")
        if candidate_prompt is None and route is None:
            raise InvalidRequest("a release needs a candidate prompt version, a route, or both")
        now = time.time()
        release_id = secrets.token_hex(8)
        with self.db.transaction():
            # First: on PostgreSQL the counter's row lock serialises concurrent starts, so
            # two cannot both find no release running (SQLite's BEGIN IMMEDIATE already does).
            self._bump()
            running = self._running_row(feature)
            if running is not None:
                raise ReleaseConflict(
                    f"feature {feature!r} already has a {running['mode']} release running "
                    f"({running['id']}); promote or roll it back first"
                )
            stable = self.prompts.find(feature, PRODUCTION)
            stable_prompt = None if stable is None else stable.version
            if candidate_prompt is not None:
                self.prompts._bump()
                self.prompts._move(feature, CANDIDATE, candidate_prompt, actor, now)
            self.db.execute(
                "INSERT INTO releases (id, feature, mode, share, state, candidate_prompt,"
                " stable_prompt, candidate_route, started_at, started_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    release_id,
                    feature,
                    mode,
                    share,
                    RUNNING,
                    candidate_prompt,
                    stable_prompt,
                    None if route is None else _route_json(route),
                    now,
                    actor,
                ),
            )
            record_in(
                self.db,
                "release.start",
                feature,
                actor=actor,
                detail={
                    "release": release_id,
                    "mode": mode,
                    "share": share,
                    "candidate_prompt": candidate_prompt,
                    "stable_prompt": stable_prompt,
                    "route": None if route is None else route.model_dump(mode="json"),
                    "eval_gate": gate,
                },
            )
        return self.get(release_id)

    def end(
        self, release_id: str, state: str, *, actor: str, evidence: dict[str, Any]
    ) -> Release | None:
        """Promote or roll back, atomically; None when it was no longer running (another
        replica, or a person, decided first)."""
        if state not in (PROMOTED, ROLLED_BACK):
            raise ValueError(state)
        now = time.time()
        with self.db.transaction():
            changed = self.db.execute_count(
                "UPDATE releases SET state = ?, ended_at = ?, ended_by = ?, decision = ?"
                " WHERE id = ? AND state = ?",
                (state, now, actor, orjson.dumps(evidence).decode(), release_id, RUNNING),
            )
            if not changed:
                return None
            release = self.get(release_id)
            labels = self._move_labels(release, state, actor, now)
            if state == PROMOTED and release.candidate_route is not None:
                self._set_route(release, now)
            self._bump()
            action = "release.promote" if state == PROMOTED else "release.rollback"
            record_in(
                self.db,
                action,
                release.feature,
                actor=actor,
                detail={"release": release_id, "mode": release.mode, **labels, **evidence},
            )
        return self.get(release_id)

    def _move_labels(self, release: Release, state: str, actor: str, now: float) -> dict[str, Any]:
        feature = release.feature
        if state == PROMOTED and release.candidate_prompt is not None:
            self.prompts._bump()
            self.prompts._move(feature, PRODUCTION, release.candidate_prompt, actor, now)
            return {"production": release.candidate_prompt}
        if state == ROLLED_BACK and release.stable_prompt is not None:
            # Back to what served before, even if someone moved the label meanwhile.
            current = self.prompts.labels(feature).get(PRODUCTION)
            if current != release.stable_prompt:
                self.prompts._bump()
                self.prompts._move(feature, PRODUCTION, release.stable_prompt, actor, now)
            return {"production": release.stable_prompt}
        return {}

    def _set_route(self, release: Release, now: float) -> None:
        assert release.candidate_route is not None
        route = _route_json(release.candidate_route)
        changed = self.db.execute_count(
            "UPDATE feature_routes SET route = ?, release_id = ?, updated_at = ? WHERE feature = ?",
            (route, release.id, now, release.feature),
        )
        if not changed:
            self.db.execute(
                "INSERT INTO feature_routes (feature, route, release_id, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (release.feature, route, release.id, now),
            )

    def _bump(self) -> None:
        self.db.execute("UPDATE release_generation SET value = value + 1 WHERE id = 1")

    # -- reads -------------------------------------------------------------------------

    def get(self, release_id: str) -> Release:
        rows = self.db.execute("SELECT * FROM releases WHERE id = ?", (release_id,))
        if not rows:
            raise ReleaseNotFound(f"no release {release_id!r}; see `bounded release status`")
        return _release(rows[0])

    def running(self, feature: str) -> Release | None:
        row = self._running_row(feature)
        return None if row is None else _release(row)

    def all_running(self) -> list[Release]:
        rows = self.db.execute(
            "SELECT * FROM releases WHERE state = ? ORDER BY started_at", (RUNNING,)
        )
        return [_release(r) for r in rows]

    def latest(self, feature: str | None = None, limit: int = 20) -> list[Release]:
        if feature is None:
            rows = self.db.execute(
                "SELECT * FROM releases ORDER BY started_at DESC LIMIT ?", (limit,)
            )
        else:
            rows = self.db.execute(
                "SELECT * FROM releases WHERE feature = ? ORDER BY started_at DESC LIMIT ?",
                (feature, limit),
            )
        return [_release(r) for r in rows]

    def routes(self) -> dict[str, RouteConfig]:
        """Routes promoted by releases: they replace the feature's route in bounded.yaml."""
        rows = self.db.execute("SELECT feature, route FROM feature_routes")
        return {r["feature"]: RouteConfig.model_validate_json(r["route"]) for r in rows}

    def promoted_routes(self) -> dict[str, PromotedRoute]:
        """The same routes with the release that promoted each, and when."""
        rows = self.db.execute("SELECT feature, route, release_id, updated_at FROM feature_routes")
        return {
            r["feature"]: PromotedRoute(
                RouteConfig.model_validate_json(r["route"]),
                r["release_id"],
                float(r["updated_at"]),
            )
            for r in rows
        }

    def generation(self) -> int:
        rows = self.db.execute("SELECT value FROM release_generation WHERE id = 1")
        return int(rows[0]["value"]) if rows else 0

    def _running_row(self, feature: str) -> Any:
        rows = self.db.execute(
            "SELECT * FROM releases WHERE feature = ? AND state = ?", (feature, RUNNING)
        )
        return rows[0] if rows else None


def _route_json(route: RouteConfig) -> str:
    return orjson.dumps(route.model_dump(mode="json")).decode()


def _release(row: Any) -> Release:
    route = row["candidate_route"]
    return Release(
        id=row["id"],
        feature=row["feature"],
        mode=row["mode"],
        share=float(row["share"]),
        state=row["state"],
        candidate_prompt=None if row["candidate_prompt"] is None else int(row["candidate_prompt"]),
        stable_prompt=None if row["stable_prompt"] is None else int(row["stable_prompt"]),
        candidate_route=None if route is None else RouteConfig.model_validate_json(route),
        started_at=float(row["started_at"]),
        started_by=row["started_by"],
        ended_at=None if row["ended_at"] is None else float(row["ended_at"]),
        ended_by=row["ended_by"],
        decision=None if row["decision"] is None else orjson.loads(row["decision"]),
    )
