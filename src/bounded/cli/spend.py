"""``bounded spend``: what the ledger says was spent, by feature, team and model.

    bounded spend                       # this month, three tables
    bounded spend --period day --by feature
    bounded spend --since 1767225600 --json

Reads the store named in bounded.yaml directly (SQLite file or PostgreSQL), the same rows
``GET /v1/spend`` reports, so it works with the gateway stopped. Cost per success divides
a group's cost by the outcomes reported for its calls (``POST /v1/outcomes``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bounded.config.schema import BoundedConfig

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)
Loader = Callable[[Path], BoundedConfig]
_load: list[Loader] = []
# The report's own names for its groups; "model" is the deployment that answered.
BY = ("feature", "team", "model")


def register(app: typer.Typer, load: Loader) -> None:
    """Add ``spend`` to the main app; ``load`` is its friendly config loader."""
    _load.append(load)
    app.command("spend")(spend)


def spend(
    period: str = typer.Option(
        "month", "--period", "-p", help="hour, day, week, month (calendar, UTC) or total"
    ),
    since: float | None = typer.Option(None, help="unix timestamp; overrides --period"),
    by: list[str] = typer.Option(list(BY), "--by", "-b", help="feature, team or model; repeat"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    config: Path = typer.Option(
        Path("bounded.yaml"), "--config", "-c", envvar="BOUNDED_CONFIG", help="path to bounded.yaml"
    ),
) -> None:
    """Spend and cost per successful outcome, by feature, team and model."""
    from bounded.economics.periods import PERIODS, window
    from bounded.economics.spend import spend_report, usd
    from bounded.store.db import Database

    unknown = [group for group in by if group not in BY]
    if unknown or period not in PERIODS:
        what = f"--by {', '.join(unknown)}" if unknown else f"--period {period}"
        err.print(
            f"[red]unknown {what}[/]; use --by {'|'.join(BY)} and --period {'|'.join(PERIODS)}"
        )
        raise typer.Exit(2)
    cfg = _load[0](config)
    now = time.time()
    start = since if since is not None else window(period, now)[0]
    db = Database.open(cfg.server.store)
    try:
        report = {group: spend_report(db, group, start, now + 1) for group in by}
    finally:
        db.close()
    if as_json:
        payload = {
            "period": "custom" if since is not None else period,
            "since": start,
            "until": now,
            **{g: [line.as_dict() for line in lines] for g, lines in report.items()},
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
        table = Table(
            group,
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
                line.group,
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
            table.add_row("(no calls)", *[""] * 8)
        out.print(table)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
