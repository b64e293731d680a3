"""``bounded spend``: what the ledger says was spent, by feature, team, model and key.

    bounded spend                       # this month, four tables
    bounded spend --period day --by feature
    bounded spend --period hour --by key     # is the old key still used after a rotation?
    bounded spend --since 1767225600 --json

Reads the store named in bounded.yaml directly (SQLite file or PostgreSQL), the same rows
``GET /v1/spend`` reports, so it works with the gateway stopped. Cost per success divides
a group's cost by the outcomes reported for its calls (``POST /v1/outcomes``).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bounded.cli.common import ConfigOption, err, load, out
from bounded.economics.spend import GROUPS
from bounded.store.db import Database

# Every grouping the report has (as GET /v1/spend); "model" is the deployment that answered.
BY = tuple(GROUPS)


def register(app: typer.Typer) -> None:
    """Add ``spend`` to the main app."""
    app.command("spend")(spend)


def spend(
    period: str = typer.Option(
        "month", "--period", "-p", help="hour, day, week, month (calendar, UTC) or total"
    ),
    since: float | None = typer.Option(None, help="unix timestamp; overrides --period"),
    by: list[str] = typer.Option(
        list(BY), "--by", "-b", help=f"{', '.join(BY)}; repeat (default: all)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    config: Path | None = ConfigOption,
) -> None:
    """Spend and cost per successful outcome, by feature, team, model and key."""
    from bounded.economics.periods import PERIODS, window
    from bounded.economics.spend import spend_report, usd

    unknown = [group for group in by if group not in BY]
    if unknown or period not in PERIODS:
        what = f"--by {', '.join(unknown)}" if unknown else f"--period {period}"
        err.print(
            f"[red]unknown {what}[/]; use --by {'|'.join(BY)} and --period {'|'.join(PERIODS)}"
        )
        raise typer.Exit(2)
    cfg = load(config)[1]
    now = time.time()
    start = since if since is not None else window(period, now)[0]
    by = list(dict.fromkeys(by))  # --by key --by key: one table
    db = Database.open(cfg.server.store)
    try:
        report = {group: spend_report(db, group, start, now + 1) for group in by}
        names = _key_names(db) if "key" in by else {}
    finally:
        db.close()
    if as_json:
        payload = {
            "period": "custom" if since is not None else period,
            "since": start,
            "until": now,
            **{
                g: [_row(g, line.as_dict(), names) for line in lines] for g, lines in report.items()
            },
        }
        out.print_json(json.dumps(payload))
        return
    label = "since" if since is not None else f"this {period}, since"
    if period == "total" and since is None:
        label = "all time, since"
    first = next(iter(report.values()), [])
    total = sum((line.cost_usd for line in first), Decimal(0))
    requests = sum(line.requests for line in first)
    out.print(f"[bold]spend[/] {label} {_when(start)}: ${usd(total)} over {requests} request(s)")
    for group, lines in report.items():
        key_columns = ("name",) if group == "key" else ()
        table = Table(
            group,
            *key_columns,
            "requests",
            "errors",
            "input tokens",
            "output tokens",
            "cost $",
            "successes",
            "failures",
            "$ per success",
            title=f"by {group}",
            title_justify="left",
        )
        for line in lines:
            cps = line.cost_per_success
            table.add_row(
                escape(line.group),
                *[escape(names.get(line.group, "-")) for _ in key_columns],
                str(line.requests),
                str(line.errors),
                str(line.input_tokens),
                str(line.output_tokens),
                usd(line.cost_usd),
                str(line.successes),
                str(line.failures),
                "-" if cps is None else usd(cps),
            )
        if not lines:
            table.add_row("(no calls)", *[""] * (8 + len(key_columns)))
        out.print(table)
        for line in lines:
            if line.always_last_usd:
                # A cascade: what it cost against always sending to its dearest target.
                saved = line.always_last_usd - line.cascade_cost_usd
                out.print(
                    f"  cascade {escape(line.group)}: ${usd(line.cascade_cost_usd)} with every "
                    f"step, against ${usd(line.always_last_usd)} always on the last target "
                    f"({'saved' if saved >= 0 else 'cost an extra'} ${usd(abs(saved))})"
                )


def _key_names(db: Database) -> dict[str, str]:
    """Key id -> name, so a rotated key's old and new ids read as one service."""
    names = {row["id"]: row["name"] for row in db.execute("SELECT id, name FROM api_keys")}
    return {"admin": "admin key", "dev": "development key", **names}


def _row(group: str, line: dict[str, object], names: dict[str, str]) -> dict[str, object]:
    if group != "key":
        return line
    return {"group": line["group"], "name": names.get(str(line["group"])), **line}


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
