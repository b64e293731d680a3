"""Incidents: opened against a feature, closed only with an architecture delta linked.

    repo = Incidents(db)
    inc = repo.open("support-answer", "cited a retired refund policy", trace_id="4bf9...",
                    controls=controls(feature))
    repo.link(inc.id, "eval_case", "refund-policy-2026", feature_config=feature)
    repo.close(inc.id, "added the case; the gate now fails the old prompt")

A delta is one of: ``audit`` (a config or control change: an audit log entry made after
the incident opened), ``eval_case`` (a case key that no eval run of the feature had before
the incident, seen in a run since), or ``guard`` (a guard kind the feature has now and did
not have when the incident opened). Each is checked against the store or the config, so an
incident cannot be closed with words alone.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bounded.errors import BoundedError, InvalidRequest, NotFound
from bounded.store.db import Database

if TYPE_CHECKING:
    from bounded.config.schema import FeatureConfig

DELTA_KINDS = ("audit", "eval_case", "guard")
SEVERITIES = ("low", "medium", "high", "critical")


class DeltaRequired(BoundedError):
    status = 409
    type = "invalid_request_error"
    default_code = "delta_required"


@dataclass(frozen=True)
class Delta:
    kind: str
    ref: str
    note: str | None
    ts: float


@dataclass(frozen=True)
class Incident:
    id: str
    opened_at: float
    feature: str
    trace_id: str | None
    summary: str
    severity: str
    opened_by: str | None
    status: str
    closed_at: float | None
    resolution: str | None
    controls: dict[str, Any] | None
    deltas: tuple[Delta, ...] = field(default=())


class Incidents:
    def __init__(self, db: Database):
        self.db = db

    def open(
        self,
        feature: str,
        summary: str,
        *,
        trace_id: str | None = None,
        severity: str = "medium",
        opened_by: str | None = None,
        controls: dict[str, Any] | None = None,
    ) -> Incident:
        if not summary.strip():
            raise InvalidRequest("an incident needs a summary of what went wrong")
        if severity not in SEVERITIES:
            raise InvalidRequest(f"severity must be one of {', '.join(SEVERITIES)}")
        incident_id = "inc_" + secrets.token_hex(6)
        now = time.time()
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO incidents (id, opened_at, feature, trace_id, summary, severity,"
                " opened_by, status, controls) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?)",
                (
                    incident_id,
                    now,
                    feature,
                    trace_id,
                    summary.strip(),
                    severity,
                    opened_by,
                    json.dumps(controls) if controls is not None else None,
                ),
            )
            _audit(self.db, opened_by, "incident.open", incident_id, {"feature": feature})
        return self.get(incident_id)

    def get(self, incident_id: str) -> Incident:
        rows = self.db.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        if not rows:
            raise NotFound(f"no incident {incident_id!r}; see `bounded incident list`")
        deltas = self.db.execute(
            "SELECT kind, ref, note, ts FROM incident_deltas WHERE incident_id = ? ORDER BY id",
            (incident_id,),
        )
        return _incident(
            rows[0], tuple(Delta(d["kind"], d["ref"], d["note"], d["ts"]) for d in deltas)
        )

    def list(
        self, *, status: str | None = None, feature: str | None = None, limit: int = 200
    ) -> list[Incident]:
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if feature:
            where.append("feature = ?")
            params.append(feature)
        sql = "SELECT * FROM incidents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY opened_at DESC LIMIT ?", (*params, limit))
        ids = [r["id"] for r in rows]
        deltas: dict[str, list[Delta]] = {i: [] for i in ids}
        if ids:
            marks = ", ".join("?" * len(ids))
            for d in self.db.execute(
                f"SELECT incident_id, kind, ref, note, ts FROM incident_deltas"
                f" WHERE incident_id IN ({marks}) ORDER BY id",
                ids,
            ):
                deltas[d["incident_id"]].append(Delta(d["kind"], d["ref"], d["note"], d["ts"]))
        return [_incident(r, tuple(deltas[r["id"]])) for r in rows]

    def link(
        self,
        incident_id: str,
        kind: str,
        ref: str,
        *,
        note: str | None = None,
        feature_config: FeatureConfig | None = None,
        actor: str | None = None,
    ) -> Incident:
        incident = self.get(incident_id)
        if incident.status != "open":
            raise InvalidRequest(f"incident {incident_id} is closed")
        if kind not in DELTA_KINDS:
            raise InvalidRequest(f"a delta is one of {', '.join(DELTA_KINDS)}")
        ref = ref.strip()
        {"audit": self._check_audit, "eval_case": self._check_case, "guard": _check_guard}[kind](
            incident, ref, feature_config
        )
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO incident_deltas (incident_id, ts, kind, ref, note)"
                " VALUES (?, ?, ?, ?, ?)",
                (incident_id, time.time(), kind, ref, note),
            )
            _audit(self.db, actor, "incident.link", incident_id, {"kind": kind, "ref": ref})
        return self.get(incident_id)

    def close(self, incident_id: str, resolution: str, *, actor: str | None = None) -> Incident:
        incident = self.get(incident_id)
        if incident.status != "open":
            raise InvalidRequest(f"incident {incident_id} is already closed")
        if not incident.deltas:
            raise DeltaRequired(
                f"incident {incident_id} has no architecture delta: link what changed first"
                " (bounded incident link ID --audit ENTRY | --eval-case KEY | --guard KIND)"
            )
        if not resolution.strip():
            raise InvalidRequest("say how it was resolved (--resolution)")
        with self.db.transaction():
            self.db.execute(
                "UPDATE incidents SET status = 'closed', closed_at = ?, resolution = ?"
                " WHERE id = ? AND status = 'open'",
                (time.time(), resolution.strip(), incident_id),
            )
            _audit(self.db, actor, "incident.close", incident_id, {"deltas": len(incident.deltas)})
        return self.get(incident_id)

    # -- checks that a delta is real -----------------------------------------------------

    def _check_audit(self, incident: Incident, ref: str, _: FeatureConfig | None) -> None:
        if not ref.isdigit():
            raise InvalidRequest("an audit delta names an audit log entry by its number")
        rows = self.db.execute("SELECT ts, action FROM audit_log WHERE id = ?", (int(ref),))
        if not rows:
            raise NotFound(f"no audit log entry {ref}")
        if str(rows[0]["action"]).startswith("incident."):
            raise InvalidRequest("an incident's own entries are not a change to the system")
        if float(rows[0]["ts"]) < incident.opened_at:
            raise InvalidRequest(f"audit entry {ref} predates the incident: it changed nothing")

    def _check_case(self, incident: Incident, ref: str, _: FeatureConfig | None) -> None:
        seen = self.db.execute(
            "SELECT MIN(r.created_at) AS first FROM eval_cases c JOIN eval_runs r"
            " ON r.id = c.run_id WHERE c.case_key = ? AND r.feature = ?",
            (ref, incident.feature),
        )
        first = seen[0]["first"] if seen else None
        if first is None:
            raise NotFound(
                f"no eval run of {incident.feature} has a case {ref!r}; add it to the suite"
                " and run `bounded eval run` first"
            )
        if float(first) < incident.opened_at:
            raise InvalidRequest(f"eval case {ref!r} was there before the incident")


def _check_guard(incident: Incident, ref: str, feature: FeatureConfig | None) -> None:
    from bounded.governance.tiers import controls

    if feature is None:
        raise InvalidRequest(f"feature {incident.feature!r} is not in the config")
    now = controls(feature)["guards"]
    before = (incident.controls or {}).get("guards", {})
    for place, kinds in now.items():
        if ref in kinds and ref not in before.get(place, []):
            return
    raise InvalidRequest(
        f"{incident.feature} has no guard {ref!r} it did not have when the incident opened;"
        f" add it under features.{incident.feature}.guards and reload"
    )


def _audit(db: Database, actor: str | None, action: str, subject: str, detail: Any) -> None:
    from bounded.audit.log import record_in

    record_in(db, action, subject, actor=actor or "cli", detail=detail)


def _incident(row: Any, deltas: tuple[Delta, ...]) -> Incident:
    return Incident(
        row["id"],
        float(row["opened_at"]),
        row["feature"],
        row["trace_id"],
        row["summary"],
        row["severity"],
        row["opened_by"],
        row["status"],
        row["closed_at"],
        row["resolution"],
        json.loads(row["controls"]) if row["controls"] else None,
        deltas,
    )
