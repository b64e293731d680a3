"""``bounded prompt push|list|show|diff|label|render``: prompts as versioned artifacts.

    bounded prompt push support-answer prompts/support.yaml -m "shorter answers"
    bounded prompt list support-answer
    bounded prompt diff support-answer 2 3          # or: production candidate
    bounded prompt label support-answer 3 production

Who did it is ``$BOUNDED_ACTOR`` or the login name; every push and label move is in the
audit log (``bounded audit``). A running gateway serves a new production version within
a second (it checks the store's change counter), on every replica.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from bounded.audit.log import actor_from_env
from bounded.cli.common import ConfigOption, err, load, out
from bounded.config.schema import BoundedConfig
from bounded.errors import BoundedError
from bounded.prompts.diff import diff_versions
from bounded.prompts.files import PromptFileError, dump_template, read_prompt_file
from bounded.prompts.store import LATEST, PRODUCTION, PromptStore, PromptVersion, seed_config

prompt_app = typer.Typer(
    help="Versioned prompts: push, list, show, diff, label, render.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(prompt_app, name="prompt")


def open_store(config: Path | None) -> tuple[BoundedConfig, PromptStore]:
    """The store, with bounded.yaml's prompts in it as their features' version 1."""
    from bounded.store.db import Database

    cfg = load(config)[1]
    store = PromptStore(Database.open(cfg.server.store))
    systems = {n: f.prompt.system for n, f in cfg.features.items() if f.prompt.system}
    seed_config(store, systems)
    return cfg, store


@prompt_app.command("push")
def push(
    feature: str = typer.Argument(..., help="the feature (as in bounded.yaml)"),
    file: Path = typer.Argument(..., help="the prompt file (YAML; see docs/prompts.md)"),
    message: str = typer.Option("", "--message", "-m", help="why this version"),
    label: list[str] = typer.Option(
        [], "--label", "-l", help="also label it (candidate, ...); repeat"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Store FILE as FEATURE's next version (immutable). The same content as the latest
    version makes no new one. `latest` moves to it; a feature's first version is also
    `production`."""
    try:
        template = read_prompt_file(file)
    except PromptFileError as exc:
        _file_error(exc)
    cfg, store = open_store(config)
    _known(cfg, feature)
    try:
        pushed = store.push(
            feature,
            template,
            author=actor_from_env(),
            message=message,
            source=str(file),
            labels=tuple(label),
        )
    except BoundedError as exc:
        _refuse(exc)
    v = pushed.version
    labels = _labels_of(store, feature, v.version)
    if not pushed.created:
        out.print(
            f"unchanged: {escape(feature)} v{v.version} already has this content"
            f" ({', '.join(labels) or 'no labels'}); no new version"
        )
        return
    names = ", ".join(template.variables()) or "none"
    out.print(
        f"pushed [bold]{escape(feature)} v{v.version}[/] ({', '.join(labels)});"
        f" variables: {escape(names)}"
    )
    if PRODUCTION not in labels:
        out.print(
            f"  [dim]serve it with `bounded prompt label {escape(feature)} {v.version}"
            " production`[/]"
        )


@prompt_app.command("list")
def list_versions(
    feature: str = typer.Argument(...),
    config: Path | None = ConfigOption,
) -> None:
    """Every version of FEATURE, oldest first, with its labels."""
    store = open_store(config)[1]
    versions = store.versions(feature)
    if not versions:
        _refuse_missing(feature)
    by_version = _by_version(store.labels(feature))
    table = Table("version", "labels", "author", "created (UTC)", "message", "digest")
    for v in versions:
        table.add_row(
            str(v.version),
            escape(", ".join(by_version.get(v.version, []))) or "-",
            escape(v.author),
            _when(v.created_at),
            escape(v.message) or "-",
            v.digest[:12],
        )
    out.print(table)


@prompt_app.command("show")
def show(
    feature: str = typer.Argument(...),
    version: str = typer.Argument(PRODUCTION, help="a number or a label"),
    as_json: bool = typer.Option(False, "--json", help="the stored form, as JSON"),
    config: Path | None = ConfigOption,
) -> None:
    """One version: who, when, why, its variables, and the prompt file."""
    store = open_store(config)[1]
    v = _get(store, feature, version)
    labels = _labels_of(store, feature, v.version)
    if as_json:
        out.print_json(json.dumps(v.json(labels)))
        return
    out.print(f"[bold]{escape(feature)} v{v.version}[/]  {escape(', '.join(labels)) or '-'}")
    out.print(f"author:    {escape(v.author)}")
    out.print(f"created:   {_when(v.created_at)} UTC")
    out.print(f"message:   {escape(v.message) or '-'}")
    out.print(f"source:    {escape(v.source or '-')}")
    out.print(f"variables: {escape(', '.join(v.template.variables())) or 'none'}")
    out.print(f"digest:    {v.digest}")
    out.print("")
    out.print(escape(dump_template(v.template)), highlight=False, end="")


@prompt_app.command("diff")
def diff(
    feature: str = typer.Argument(...),
    old: str | None = typer.Argument(None, help="default: production (or the one before)"),
    new: str | None = typer.Argument(None, help="default: latest"),
    config: Path | None = ConfigOption,
) -> None:
    """What changed between two versions (numbers or labels)."""
    store = open_store(config)[1]
    newer = _get(store, feature, new or LATEST)
    if old is None:
        older = _get(store, feature, PRODUCTION)
        if older.version == newer.version:
            if newer.version == 1:
                out.print(f"{escape(feature)} has one version; nothing to compare")
                return
            older = _get(store, feature, str(newer.version - 1))
    else:
        older = _get(store, feature, old)
    lines = diff_versions(older, newer)
    if not lines:
        out.print(f"v{older.version} and v{newer.version} are the same")
        return
    for line in lines:
        color = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1])
        text = escape(line)
        out.print(f"[{color}]{text}[/]" if color else text, highlight=False)


@prompt_app.command("label")
def label(
    feature: str = typer.Argument(...),
    version: str = typer.Argument(..., help="a number, or a label to copy (candidate)"),
    name: str = typer.Argument(..., help="production, candidate, or any other label"),
    config: Path | None = ConfigOption,
) -> None:
    """Point label NAME at a version of FEATURE; `production` is what the gateway serves."""
    store = open_store(config)[1]
    try:
        target = store.get(feature, version).version
        previous = store.label(feature, target, name, actor=actor_from_env())
    except BoundedError as exc:
        _refuse(exc)
    was = "new label" if previous is None else f"was v{previous}"
    out.print(f"{escape(feature)}: {escape(name)} -> v{target} ({was})")


@prompt_app.command("render")
def render(
    feature: str = typer.Argument(...),
    version: str = typer.Argument(PRODUCTION, help="a number or a label"),
    var: list[str] = typer.Option([], "--var", help="NAME=VALUE; repeat"),
    config: Path | None = ConfigOption,
) -> None:
    """The messages a version renders to with these variables (what the model gets)."""
    store = open_store(config)[1]
    v = _get(store, feature, version)
    values: dict[str, str] = {}
    for item in var:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"[red]--var {escape(item)!r} is not NAME=VALUE[/]")
            raise typer.Exit(1)
        values[key] = value
    try:
        messages = v.template.render(values)
    except BoundedError as exc:
        _refuse(exc)
    out.print_json(json.dumps(messages))


def _get(store: PromptStore, feature: str, ref: str) -> PromptVersion:
    try:
        return store.get(feature, ref)
    except BoundedError as exc:
        _refuse(exc)


def _known(cfg: BoundedConfig, feature: str) -> None:
    if feature not in cfg.features:
        err.print(f"[red]no feature named {escape(repr(feature))} in bounded.yaml[/]")
        names = ", ".join(cfg.features) or "none"
        err.print(f"  [dim]hint:[/] features: {escape(names)}; add it under features: first")
        raise typer.Exit(1)


def _labels_of(store: PromptStore, feature: str, version: int) -> list[str]:
    return sorted(label for label, v in store.labels(feature).items() if v == version)


def _by_version(labels: dict[str, int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for label, version in sorted(labels.items()):
        out.setdefault(version, []).append(label)
    return out


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _file_error(exc: PromptFileError) -> NoReturn:
    where = f"{exc.file}:{exc.line}" if exc.line else exc.file
    err.print(f"[bold red]prompt file error[/] {escape(where)}: {escape(exc.message)}")
    if exc.hint:
        err.print(f"      [dim]hint:[/] {escape(exc.hint)}")
    raise typer.Exit(1)


def _refuse(exc: BoundedError) -> NoReturn:
    err.print(f"[red]{escape(exc.message)}[/]")
    raise typer.Exit(1)


def _refuse_missing(feature: str) -> NoReturn:
    err.print(f"[red]feature {escape(repr(feature))} has no prompt versions[/]")
    err.print(f"  [dim]hint:[/] push one with `bounded prompt push {escape(feature)} FILE`")
    raise typer.Exit(1)
