"""``bounded keys create|list|rotate|revoke``: virtual API keys from the command line.

    bounded keys create billing-bot --feature support-answer    # plaintext printed once
    bounded keys rotate billing-bot --grace-minutes 60          # new key, old one for an hour
    bounded keys revoke billing-bot                             # by id, or a unique name

A name belongs to one active key at a time, so ``revoke NAME`` never means several keys:
``create`` refuses a taken name and points at ``rotate``, and during a rotation's grace
period (two active keys, one name) ``revoke NAME`` refuses and lists the ids.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from bounded.cli.common import ConfigOption, err, load, out
from bounded.config.schema import BoundedConfig
from bounded.store.keys import (
    SAME_LIFETIME,
    SCOPES,
    AmbiguousKey,
    KeyNotFound,
    KeyRecord,
    KeyRepository,
    NameTaken,
)

keys_app = typer.Typer(
    help="Create, list, rotate and revoke virtual API keys.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _open(config: Path | None) -> tuple[BoundedConfig, KeyRepository]:
    from bounded.gateway.server import open_keys

    cfg = load(config)[1]
    return cfg, open_keys(cfg)


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="the service using the key; unique among active keys"),
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
    scope: list[str] = typer.Option(
        [], "--scope", "-s", help=f"also may read: {', '.join(SCOPES)}; repeat"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Create a key; the plaintext is printed once and stored only as a hash.

    A name an active key already holds is refused: replace that key with `keys rotate`."""
    cfg, keys = _open(config)
    unknown = [f for f in feature if f != "*" and f not in cfg.features and f not in cfg.models]
    if unknown:
        err.print(f"[red]unknown feature or model:[/] {escape(', '.join(unknown))}")
        raise typer.Exit(2)
    bad = [s for s in scope if s not in SCOPES]
    if bad:
        err.print(
            f"[red]unknown scope:[/] {escape(', '.join(bad))}; scopes are {', '.join(SCOPES)}"
        )
        raise typer.Exit(1)
    expires = time.time() + expires_in_days * 86400 if expires_in_days else None
    # No scope given: the key may call every feature and model.
    features = feature or ([] if team else ["*"])
    limits = _key_limits(budget_usd, budget_period, budget_mode, rpm, tpm)
    try:
        record, plaintext = keys.create(
            name,
            features=features,
            teams=team,
            expires_at=expires,
            limits=limits,
            scopes=tuple(scope),
        )
    except NameTaken as exc:
        held = ", ".join(f"{r.id} (created {_when(r.created_at)})" for r in exc.holders)
        err.print(f"[red]an active key is already named {escape(repr(name))}:[/] {held}")
        err.print(
            "  names are unique among active keys, so `bounded keys revoke NAME` means one key."
        )
        err.print(
            f"  [dim]hint:[/] to replace it, run `bounded keys rotate {escape(name)}` (add"
            " --grace-minutes N to keep the old key working while you deploy the new one);"
            " to keep both, choose another name"
        )
        raise typer.Exit(1) from None
    _audit(keys, "key.create", record, limits=limits, scopes=list(scope))
    out.print(
        f"created key [bold]{record.id}[/] ({escape(name)}); copy it now, it is not shown again:"
    )
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
        err.print(f"[red]invalid limit:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    return limits or None


@keys_app.command("list")
def list_keys(config: Path | None = ConfigOption) -> None:
    """List keys (hints only, never the key)."""
    records = _open(config)[1].list()
    table = Table("id", "name", "key", "features", "teams", "created", "expires", "status")
    now = time.time()
    for r in records:
        table.add_row(
            r.id,
            escape(r.name),
            r.hint,
            escape(", ".join(r.features)) or "-",
            escape(", ".join(r.teams)) or "-",
            _when(r.created_at),
            _when(r.expires_at),
            _status(r, now),
        )
    out.print(table)


@keys_app.command("rotate")
def rotate(
    key: str = typer.Argument(..., help="key id, or a name one active key holds"),
    grace_minutes: float = typer.Option(
        0, "--grace-minutes", "-g", min=0, help="keep the old key working this long (default: 0)"
    ),
    expires_in_days: float | None = typer.Option(
        None, "--expires-in-days", min=0, help="the new key's lifetime (default: the old one's)"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Replace a key: a new one with the same name, features, teams and limits.

    The old key is revoked at once, or with --grace-minutes keeps working that long (its
    expiry is brought forward), so services can move to the new key first."""
    keys = _open(config)[1]
    expires: float | Literal["same-lifetime"] | None = SAME_LIFETIME
    if expires_in_days is not None:
        expires = time.time() + expires_in_days * 86400 if expires_in_days else None
    try:
        old, new, plaintext = keys.rotate(key, grace_s=grace_minutes * 60, expires_at=expires)
    except (KeyNotFound, AmbiguousKey) as exc:
        _refuse(exc)
    _audit(keys, "key.rotate", new, replaces=old.id, grace_s=grace_minutes * 60)
    out.print(
        f"rotated {escape(new.name)}: new key [bold]{new.id}[/] (same features, teams and"
        " limits); copy it now, it is not shown again:"
    )
    out.print(plaintext, highlight=False, soft_wrap=True)
    if old.revoked_at is not None:
        out.print(f"old key {old.id} revoked")
    else:
        out.print(
            f"old key {old.id} keeps working until {_when(old.expires_at)} UTC; deploy the new"
            f" key, then end the grace early with `bounded keys revoke {old.id}`"
        )


@keys_app.command("revoke")
def revoke(
    key: str = typer.Argument(..., help="key id, or a name one active key holds"),
    config: Path | None = ConfigOption,
) -> None:
    """Revoke one key; the running gateway refuses it from its next request.

    A name that several active keys share (a rotation's grace period) is refused with
    their ids: revoke the one you mean by id."""
    keys = _open(config)[1]
    try:
        record = keys.revoke(key)
    except AmbiguousKey as exc:
        _refuse(exc)
    if record is None:
        _refuse(KeyNotFound(key))
    _audit(keys, "key.revoke", record)
    out.print(f"revoked {record.id} ({escape(record.name)})")


def _audit(keys: KeyRepository, action: str, record: KeyRecord, **detail: object) -> None:
    """Who created, rotated or revoked which key (its id, name and scope; never the key)."""
    from bounded.audit import AuditLog, actor_from_env

    what = {"name": record.name, "features": record.features, "teams": record.teams, **detail}
    AuditLog(keys.db).record(action, record.id, actor=actor_from_env(), detail=what)


def _refuse(exc: KeyNotFound | AmbiguousKey) -> NoReturn:
    if isinstance(exc, KeyNotFound):
        err.print(f"[red]no active key with id or name {escape(repr(exc.ref))}[/]")
        err.print("  [dim]hint:[/] `bounded keys list` shows every key's id, name and status")
        raise typer.Exit(1)
    err.print(
        f"[red]{len(exc.matches)} active keys are named {escape(repr(exc.name))}[/];"
        " name the one you mean by id:"
    )
    table = Table("id", "key", "created", "expires")
    for r in exc.matches:
        table.add_row(r.id, r.hint, _when(r.created_at), _when(r.expires_at))
    err.print(table)
    raise typer.Exit(1)


def _status(record: KeyRecord, now: float) -> str:
    if record.revoked_at:
        return "revoked"
    return "active" if record.active(now) else "expired"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"
