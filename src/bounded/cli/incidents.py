"""``bounded incident``: open, list, show, link a delta to, and close incidents.

    bounded incident open --feature support-answer --trace 4bf92f --summary "cited old policy"
    bounded incident list [--status open] [--feature F]
    bounded incident show inc_1a2b3c
    bounded incident link inc_1a2b3c --eval-case refund-policy-2026
    bounded incident close inc_1a2b3c --resolution "gate now fails the old prompt" [--guard pii]

Closing needs an architecture delta linked first (or given to ``close``): an audit log
entry of a config or control change, a new eval case, or a new guard. Reads and writes the
store named in bounded.yaml, so it works with the gateway stopped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bounded.cli.common import ConfigOption, err, load, out
from bounded.config.schema import BoundedConfig
from bounded.errors import BoundedError
from bounded.governance.incidents import SEVERITIES, Incident, Incidents
from bounded.store.db import Database

incident_app = typer.Typer(help="Incidents and the changes that close them.", no_args_is_help=True)

AuditOption = typer.Option(None, "--audit", help="an audit log entry number (a config change)")
CaseOption = typer.Option(None, "--eval-case", help="a new eval case key of the feature")
GuardOption = typer.Option(None, "--guard", help="a guard kind the feature has gained")
NoteOption = typer.Option(None, "--note", help="what the change does")


def register(app: typer.Typer) -> None:
    app.add_typer(incident_app, name="incident")


def _repo(config: Path | None) -> tuple[Incidents, BoundedConfig]:
    cfg = load(config)[1]
    return Incidents(Database.open(cfg.server.store)), cfg


def _fail(exc: BoundedError) -> typer.Exit:
    err.print(f"[bold red]error[/]: {escape(exc.message)}")
    return typer.Exit(1)


@incident_app.command("open")
def open_incident(
    feature: str = typer.Option(..., "--feature", "-f", help="the feature that misbehaved"),
    summary: str = typer.Option(..., "--summary", "-s", help="what went wrong"),
    trace: str | None = typer.Option(None, "--trace", "-t", help="a trace id that shows it"),
    severity: str = typer.Option("medium", help=", ".join(SEVERITIES)),
    by: str | None = typer.Option(None, "--by", help="who opens it (default: the owner)"),
    config: Path | None = ConfigOption,
) -> None:
    """Open an incident against a feature."""
    from bounded.governance.tiers import controls

    repo, cfg = _repo(config)
    spec = cfg.features.get(feature)
    if spec is None:
        err.print(
            f"[bold red]error[/]: no feature {escape(feature)!r}; "
            f"defined: {escape(', '.join(cfg.features) or 'none')}"
        )
        raise typer.Exit(1)
    try:
        incident = repo.open(
            feature,
            summary,
            trace_id=trace,
            severity=severity,
            opened_by=by or spec.owner,
            controls=controls(spec),
        )
    except BoundedError as exc:
        raise _fail(exc) from None
    out.print(f"[green]opened[/] {incident.id} on {escape(feature)} (owner {escape(spec.owner)})")
    out.print(
        f"  [dim]close it with a delta:[/] bounded incident close {incident.id} "
        "--resolution ... --audit N | --eval-case KEY | --guard KIND"
    )


@incident_app.command("list")
def list_incidents(
    status: str | None = typer.Option(None, help="open or closed"),
    feature: str | None = typer.Option(None, "--feature", "-f"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Incidents, newest first, with how many deltas each has."""
    repo, _ = _repo(config)
    incidents = repo.list(status=status, feature=feature)
    if as_json:
        out.print_json(json.dumps([_as_dict(i) for i in incidents]))
        return
    if not incidents:
        out.print("no incidents. Open one: bounded incident open --feature F --summary ...")
        return
    table = Table("id", "opened", "feature", "severity", "status", "deltas", "summary")
    for i in incidents:
        table.add_row(
            i.id,
            _when(i.opened_at),
            escape(i.feature),
            i.severity,
            i.status,
            str(len(i.deltas)),
            escape(i.summary[:80]),
        )
    out.print(table)


@incident_app.command("show")
def show(
    incident_id: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """One incident with its trace and deltas."""
    repo, _ = _repo(config)
    try:
        incident = repo.get(incident_id)
    except BoundedError as exc:
        raise _fail(exc) from None
    if as_json:
        out.print_json(json.dumps(_as_dict(incident)))
        return
    out.print(f"[bold]{incident.id}[/] · {escape(incident.feature)} · {incident.status}")
    out.print(f"  opened {_when(incident.opened_at)} by {escape(incident.opened_by or '-')}")
    out.print(f"  severity {incident.severity}; trace {escape(incident.trace_id or '-')}")
    out.print(f"  summary: {escape(incident.summary)}")
    for d in incident.deltas:
        out.print(f"  delta: {d.kind} {escape(d.ref)} {escape(d.note or '')}")
    if not incident.deltas:
        out.print("  [yellow]no delta yet[/]: it cannot be closed until one is linked")
    if incident.resolution:
        out.print(f"  closed {_when(incident.closed_at or 0)}: {escape(incident.resolution)}")


@incident_app.command("link")
def link(
    incident_id: str = typer.Argument(...),
    audit: str | None = AuditOption,
    eval_case: str | None = CaseOption,
    guard: str | None = GuardOption,
    note: str | None = NoteOption,
    config: Path | None = ConfigOption,
) -> None:
    """Link an architecture delta (what changed because of the incident)."""
    repo, cfg = _repo(config)
    if not _link(repo, cfg, incident_id, audit, eval_case, guard, note):
        err.print("[bold red]error[/]: give one of --audit N, --eval-case KEY, --guard KIND")
        raise typer.Exit(1)
    out.print(f"[green]linked[/] to {incident_id}")


@incident_app.command("close")
def close(
    incident_id: str = typer.Argument(...),
    resolution: str = typer.Option(..., "--resolution", "-r", help="how it was resolved"),
    audit: str | None = AuditOption,
    eval_case: str | None = CaseOption,
    guard: str | None = GuardOption,
    note: str | None = NoteOption,
    config: Path | None = ConfigOption,
) -> None:
    """Close an incident: it needs a linked delta (here or by `link` before)."""
    repo, cfg = _repo(config)
    _link(repo, cfg, incident_id, audit, eval_case, guard, note)
    try:
        incident = repo.close(incident_id, resolution)
    except BoundedError as exc:
        raise _fail(exc) from None
    out.print(f"[green]closed[/] {incident.id} with {len(incident.deltas)} delta(s)")


def _link(
    repo: Incidents,
    cfg: BoundedConfig,
    incident_id: str,
    audit: str | None,
    eval_case: str | None,
    guard: str | None,
    note: str | None,
) -> bool:
    given = [(k, v) for k, v in (("audit", audit), ("eval_case", eval_case), ("guard", guard)) if v]
    try:
        for kind, ref in given:
            feature = repo.get(incident_id).feature
            repo.link(incident_id, kind, ref, note=note, feature_config=cfg.features.get(feature))
    except BoundedError as exc:
        raise _fail(exc) from None
    return bool(given)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _as_dict(i: Incident) -> dict[str, object]:
    return {
        "id": i.id,
        "opened_at": i.opened_at,
        "feature": i.feature,
        "trace_id": i.trace_id,
        "summary": i.summary,
        "severity": i.severity,
        "opened_by": i.opened_by,
        "status": i.status,
        "closed_at": i.closed_at,
        "resolution": i.resolution,
        "deltas": [{"kind": d.kind, "ref": d.ref, "note": d.note, "ts": d.ts} for d in i.deltas],
    }
