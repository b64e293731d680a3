"""``bounded audit``: who changed what, and when (the append-only audit log).

bounded audit --since 24h
bounded audit --since 2026-12-01 --action prompt     # prompt.push, prompt.label
bounded audit --json | jq .
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bounded.audit.log import AuditLog
from bounded.cli.common import ConfigOption, err, load, out

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)


def audit(
    since: str | None = typer.Option(
        None, "--since", help="30m, 24h, 7d; a date (2026-12-01, UTC) or a unix time"
    ),
    action: str | None = typer.Option(
        None, "--action", "-a", help="an action (prompt.label) or its prefix (prompt)"
    ),
    subject: str | None = typer.Option(None, "--subject", help="a feature, key id, file"),
    limit: int = typer.Option(1000, "--limit", "-n", min=1, help="the newest N entries"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    config: Path | None = ConfigOption,
) -> None:
    """The audit log, oldest first: prompt pushes and labels, keys, config reloads,
    releases and their decisions."""
    from bounded.store.db import Database

    start = parse_since(since) if since else None
    cfg = load(config)[1]
    log = AuditLog(Database.open(cfg.server.store))
    entries = log.entries(since=start, action=action, subject=subject, limit=limit)
    if as_json:
        for entry in entries:
            out.print(json.dumps(entry.json()), highlight=False, soft_wrap=True)
        return
    if not entries:
        out.print("no audit entries" + (f" since {_when(start)} UTC" if start else ""))
        return
    table = Table("time (UTC)", "actor", "action", "subject", "detail")
    for e in entries:
        detail = ", ".join(
            f"{k}={_short(v)}" for k, v in e.detail.items() if v not in (None, "", [])
        )
        table.add_row(
            _when(e.ts), escape(e.actor), escape(e.action), escape(e.subject), escape(detail)
        )
    out.print(table)


def parse_since(value: str) -> float:
    """``30m``, ``24h``, ``7d``, ``2w`` ago; an ISO date or time (UTC if no zone); unix."""
    value = value.strip()
    match = _AGO.match(value)
    if match:
        return time.time() - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        err.print(f"[red]--since {escape(repr(value))} is not a time[/]")
        err.print("  [dim]hint:[/] 30m, 24h, 7d, 2026-12-01, 2026-12-01T09:30 or a unix time")
        raise typer.Exit(1) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"
