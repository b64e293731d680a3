"""``bounded`` command line: serve, config check, keys, models."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bounded.config.loader import ConfigError, load_config
from bounded.config.schema import BoundedConfig, ModelConfig

app = typer.Typer(
    help="bounded: a control plane for AI features.", no_args_is_help=True, add_completion=False
)
config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke virtual API keys.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")

# Piped output (CI, `| grep`) gets a wide console so ids and hints are never cut.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)

ConfigOption = typer.Option(
    Path("bounded.yaml"), "--config", "-c", envvar="BOUNDED_CONFIG", help="path to bounded.yaml"
)


def _load(path: Path) -> BoundedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print(f"[bold red]config error[/] in {exc.source}:")
        for problem in exc.problems:
            err.print(f"  [red]✗[/] [bold]{problem.path or '<root>'}[/]: {problem.message}")
            if problem.hint:
                err.print(f"      [dim]hint:[/] {problem.hint}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: Path = ConfigOption,
    host: str | None = typer.Option(None, help="bind address (default: server.host)"),
    port: int | None = typer.Option(None, help="port (default: server.port)"),
) -> None:
    """Serve the OpenAI-compatible gateway."""
    from bounded.gateway.server import serve as run

    _load(config)  # fail with the friendly listing before anything starts
    run(config, host, port)


@config_app.command("check")
def config_check(config: Path = ConfigOption) -> None:
    """Validate bounded.yaml and explain every problem with its path and a hint."""
    cfg = _load(config)
    out.print(
        f"[green]✓[/] {config}: {len(cfg.providers)} provider(s), "
        f"{len(cfg.models)} model(s), {len(cfg.features)} feature(s)"
    )


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="a label for the key, e.g. the service using it"),
    feature: list[str] = typer.Option(
        [], "--feature", "-f", help="allowed feature or model; repeat"
    ),
    team: list[str] = typer.Option([], "--team", "-t", help="allowed team (features it owns)"),
    expires_in_days: float | None = typer.Option(None, "--expires-in-days", min=0),
    budget_usd: float | None = typer.Option(
        None, "--budget-usd", min=0, help="this key's own spend limit"
    ),
    budget_period: str = typer.Option(
        "month", "--budget-period", help="hour, day, week, month or total"
    ),
    budget_mode: str = typer.Option("hard", "--budget-mode", help="hard (refuse) or soft (alert)"),
    rpm: int | None = typer.Option(None, "--rpm", min=1, help="requests per minute"),
    tpm: int | None = typer.Option(None, "--tpm", min=1, help="tokens per minute"),
    config: Path = ConfigOption,
) -> None:
    """Create a key; the plaintext is printed once and stored only as a hash."""
    from bounded.gateway.server import open_keys

    cfg = _load(config)
    unknown = [f for f in feature if f != "*" and f not in cfg.features and f not in cfg.models]
    if unknown:
        err.print(f"[red]unknown feature or model:[/] {', '.join(unknown)}")
        raise typer.Exit(2)
    expires = time.time() + expires_in_days * 86400 if expires_in_days else None
    # No scope given: the key may call every feature and model.
    features = feature or ([] if team else ["*"])
    limits = _key_limits(budget_usd, budget_period, budget_mode, rpm, tpm)
    record, plaintext = open_keys(cfg).create(
        name, features=features, teams=team, expires_at=expires, limits=limits
    )
    out.print(f"created key [bold]{record.id}[/] ({name}); copy it now, it is not shown again:")
    out.print(plaintext, highlight=False, soft_wrap=True)


def _key_limits(
    budget_usd: float | None, period: str, mode: str, rpm: int | None, tpm: int | None
) -> dict[str, object] | None:
    from bounded.config.schema import BudgetConfig, RateLimitConfig

    limits: dict[str, object] = {}
    try:
        if budget_usd is not None:
            budget = BudgetConfig(amount_usd=str(budget_usd), period=period, mode=mode)
            limits["budget"] = budget.model_dump(mode="json")
        if rpm is not None or tpm is not None:
            limits["rate_limit"] = RateLimitConfig(rpm=rpm, tpm=tpm).model_dump(mode="json")
    except ValueError as exc:
        err.print(f"[red]invalid limit:[/] {exc}")
        raise typer.Exit(2) from None
    return limits or None


@keys_app.command("list")
def keys_list(config: Path = ConfigOption) -> None:
    """List keys (hints only, never the key)."""
    from bounded.gateway.server import open_keys

    records = open_keys(_load(config)).list()
    table = Table("id", "name", "key", "features", "teams", "created", "expires", "status")
    now = time.time()
    for r in records:
        status = "revoked" if r.revoked_at else ("expired" if not r.active(now) else "active")
        table.add_row(
            r.id,
            r.name,
            r.hint,
            ", ".join(r.features) or "-",
            ", ".join(r.teams) or "-",
            _when(r.created_at),
            _when(r.expires_at),
            status,
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: str = typer.Argument(..., help="key id or name"), config: Path = ConfigOption
) -> None:
    """Revoke a key; the running gateway refuses it from its next request."""
    from bounded.gateway.server import open_keys

    if not open_keys(_load(config)).revoke(key):
        err.print(f"[red]no active key with id or name {key!r}[/]")
        raise typer.Exit(1)
    out.print(f"revoked {key}")


@app.command()
def models(
    config: Path = ConfigOption,
    url: str | None = typer.Option(None, help="a running gateway, for live breaker state"),
) -> None:
    """What is configured: features, models, routes, prices and breaker state."""
    cfg = _load(config)
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
    features = Table("feature", "owner", "risk", "strategy", "targets")
    for name, f in cfg.features.items():
        features.add_row(name, f.owner, f.risk_tier, f.route.strategy, " → ".join(f.route.targets))
    out.print(features)


def _price_cells(model: ModelConfig) -> tuple[str, str, str]:
    from bounded.economics.prices import price_for

    quote = price_for(model.model, model.price)
    return str(quote.price.input), str(quote.price.output), quote.source


def _live_breakers(url: str) -> dict[str, dict[str, object]]:
    import json
    import urllib.request

    with urllib.request.urlopen(url.rstrip("/") + "/readyz", timeout=5) as resp:
        return json.load(resp).get("breakers", {})


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"


from bounded.cli.retrieval import register as _register_retrieval  # noqa: E402

_register_retrieval(app, _load)

from bounded.cli.spend import register as _register_spend  # noqa: E402

_register_spend(app, _load)


def main() -> None:
    from bounded.errors import BoundedError

    try:
        app()
    except BoundedError as exc:
        # An expected failure (an index database down, a missing model): one clear line
        # and a non-zero exit, not a traceback.
        err.print(f"[bold red]error[/]: {escape(exc.message)}")
        raise SystemExit(1) from None
