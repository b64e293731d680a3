"""``bounded guard check FILE|-``: what a guard policy would do with a text, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bounded.cli.common import ConfigOption, err, load, out

guard_app = typer.Typer(help="Try guards on a text before turning them on.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(guard_app, name="guard")


@guard_app.command("check")
def check(
    file: str = typer.Argument(..., help="a text file, or - for standard input"),
    guard: list[str] = typer.Option(
        [], "--guard", "-g", help="a guard kind (pii, secrets, injection); repeat"
    ),
    action: str = typer.Option("block", help="the action given to each --guard"),
    feature: str | None = typer.Option(
        None, "--feature", "-f", help="run a feature's effective policy instead"
    ),
    place: str = typer.Option("input", help="input, retrieved or output"),
    risk_tier: str = typer.Option("low", help="low, medium or high (scored guards' threshold)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    config: Path | None = ConfigOption,
) -> None:
    """Run guards over FILE and print what they found (kinds and offsets, never values).

    Exits 0 when the text would pass, 1 when a guard would block or drop it.
    """
    from pydantic import ValidationError

    from bounded.validation.config import GuardSpec
    from bounded.validation.guards.base import GuardConfigError
    from bounded.validation.policy import effective_policy
    from bounded.validation.service import check_text

    text = sys.stdin.read() if file == "-" else _read(file)
    if feature is not None:
        cfg = load(config)[1]
        found = cfg.features.get(feature)
        if found is None:
            err.print(f"[red]no feature named {escape(feature)!r}[/]")
            raise typer.Exit(2)
        specs = list(effective_policy(found).guards(place))
        risk_tier = found.risk_tier
    elif guard:
        try:
            specs = [GuardSpec(kind=kind, action=action) for kind in guard]
        except ValidationError as exc:
            err.print(f"[red]{escape(str(exc.errors()[0]['msg']))}[/]")
            raise typer.Exit(2) from None
    else:
        err.print("[red]name guards with --guard KIND, or a --feature[/]")
        raise typer.Exit(2)
    try:
        report = check_text(text, specs, place=place, risk_tier=risk_tier)
    except GuardConfigError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    if as_json:
        out.print_json(json.dumps(report))
    else:
        _print(report, len(text))
    raise typer.Exit(0 if report["allowed"] else 1)


def _read(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        err.print(f"[red]cannot read {escape(file)}: {escape(str(exc))}[/]")
        raise typer.Exit(2) from None


def _print(report: dict[str, object], size: int) -> None:
    table = Table("guard", "action", "fired", "score", "findings")
    for result in report["results"]:  # type: ignore[attr-defined]
        findings = result["findings"]
        kinds: dict[str, int] = {}
        for f in findings:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
        shown = ", ".join(f"{k} x{n}" for k, n in kinds.items()) or "-"
        score = "-" if result["score"] is None else f"{result['score']:.2f}"
        fired = "[red]yes[/]" if result["triggered"] else "no"
        table.add_row(result["guard"], result["action"], fired, score, escape(shown))
    out.print(table)
    verdict = "[green]would pass[/]" if report["allowed"] else "[red]would be refused[/]"
    out.print(f"{size} characters, {report['place']}: {verdict} (action: {report['action']})")
    if report.get("text"):
        out.print("[bold]as a model would get it:[/]")
        out.print(escape(str(report["text"])), highlight=False)
