"""``bounded`` command line: serve, config check, keys, models."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bounded.cli import audit, evals, guards, incidents, keys, prompts, release, retrieval, spend
from bounded.cli.common import ConfigOption, err, load, out
from bounded.config.schema import BoundedConfig, ModelConfig

app = typer.Typer(
    help="bounded: a control plane for AI features.", no_args_is_help=True, add_completion=False
)
config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")
keys.register(app)
retrieval.register(app)
spend.register(app)
guards.register(app)
incidents.register(app)
prompts.register(app)
audit.register(app)
evals.register(app)
release.register(app)


@app.command()
def serve(
    config: Path | None = ConfigOption,
    host: str | None = typer.Option(None, help="bind address (default: server.host)"),
    port: int | None = typer.Option(None, help="port (default: server.port)"),
    workers: str | None = typer.Option(
        None,
        help="gateway processes on the port: a number, or auto for one per core "
        "(default: server.workers); budgets and rate limits stay exact across them",
    ),
) -> None:
    """Serve the OpenAI-compatible gateway."""
    from bounded.gateway.entry import serve as run

    path, _ = load(config)  # fail with the friendly listing before anything starts
    count = _workers(workers)
    raise typer.Exit(run(path, host, port, count))


def _workers(value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        err.print(f"[red]--workers {escape(value)!r} is not a number of processes[/]")
        err.print("  [dim]hint:[/] a whole number from 1, or auto (one per core)")
        raise typer.Exit(1)
    return int(value)


@config_app.command("check")
def config_check(
    config: Path | None = ConfigOption,
    explain: list[str] | None = typer.Option(
        None,
        "--explain",
        metavar="FEATURE",
        help="print the effective validation policy of FEATURE (its own settings over "
        "its risk tier's defaults); repeat for several",
    ),
) -> None:
    """Validate bounded.yaml and explain every problem with its path and a hint."""
    path, cfg = load(config)
    # --explain inspects a policy (governance problems print as warnings); the plain check gates.
    _check_governance(path, cfg, fail=not explain)
    out.print(
        f"[green]✓[/] {escape(str(path))}: {len(cfg.providers)} provider(s), "
        f"{len(cfg.models)} model(s), {len(cfg.features)} feature(s)"
    )
    from bounded.validation.policy import explain as describe

    for name in explain or ():
        feature = cfg.features.get(name)
        if feature is None:
            err.print(
                f"[red]no feature named {escape(name)!r}[/]; "
                f"defined: {escape(', '.join(cfg.features) or 'none')}"
            )
            raise typer.Exit(1)
        out.print(escape(describe(name, feature)), highlight=False)


def _check_governance(path: Path, cfg: BoundedConfig, *, fail: bool) -> None:
    """Owners, risk tiers and each tier's minimum controls (docs/governance.md): the check
    fails on them; a gateway still serves such a config, so yesterday's keeps serving."""
    from bounded.governance.tiers import check_governance

    issues = check_governance(cfg)
    if not issues:
        return
    err.print(f"[bold red]governance[/] in {escape(str(path))}: {len(issues)} problem(s)")
    for where, message, hint in issues:
        err.print(f"  [red]✗[/] [bold]{escape(where)}[/]: {escape(message)}")
        err.print(f"      [dim]hint:[/] {escape(hint)}")
    if fail:
        raise typer.Exit(1)


@app.command()
def models(
    config: Path | None = ConfigOption,
    url: str | None = typer.Option(None, help="a running gateway, for live breaker state"),
) -> None:
    """What is configured: features, models, routes, prices and breaker state."""
    cfg = load(config)[1]
    breakers = _live_breakers(url) if url else {}
    table = Table(
        "model",
        "provider",
        "upstream name",
        "kind",
        "context",
        "$/M in",
        "$/M out",
        "price from",
        "breaker",
    )
    for name, m in cfg.models.items():
        state = breakers.get(name, {}).get("state", "closed" if not url else "?")
        table.add_row(
            name,
            m.provider,
            m.model,
            m.kind,
            str(m.context_window or "-"),
            *_price_cells(m),
            str(state),
        )
    out.print(table)
    promoted = release.promoted_routes(cfg)  # a release's promoted route replaces the file's
    features = Table("feature", "owner", "risk", "strategy", "targets", "route from")
    for name, f in cfg.features.items():
        route, source = f.route, "bounded.yaml"
        if name in promoted:
            route, source = promoted[name].route, f"release {promoted[name].release_id}"
        features.add_row(
            name, f.owner, f.risk_tier, route.strategy, " → ".join(route.targets), source
        )
    out.print(features)


def _price_cells(model: ModelConfig) -> tuple[str, str, str]:
    from bounded.economics.prices import price_for

    quote = price_for(model.model, model.price)
    return str(quote.price.input), str(quote.price.output), quote.source


def _live_breakers(url: str) -> dict[str, dict[str, object]]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/readyz", timeout=5) as resp:
            return dict(json.load(resp).get("breakers", {}))
    except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTPError included
        err.print(f"[red]no gateway answered at {escape(url)}[/]: {escape(str(exc))}")
        err.print("  [dim]hint:[/] start it with `bounded serve`, or leave out --url")
        raise typer.Exit(1) from None


def main() -> None:
    from bounded.errors import BoundedError

    try:
        app()
    except BoundedError as exc:
        # An expected failure (an index database down, a missing model): one clear line
        # and a non-zero exit, not a traceback.
        err.print(f"[bold red]error[/]: {escape(exc.message)}")
        raise SystemExit(1) from None
