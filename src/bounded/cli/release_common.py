"""What ``bounded release`` and ``bounded release answers`` share: the command group, the
error exit, the store opened with bounded.yaml's prompts seeded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.markup import escape

from bounded.cli.common import err, load
from bounded.config.schema import BoundedConfig

release_app = typer.Typer(
    help="Shadow and canary releases of a prompt version (and route).", no_args_is_help=True
)


def _fail(message: str, hint: str | None = None) -> NoReturn:
    err.print(f"[bold red]error[/]: {escape(message)}")
    if hint:
        err.print(f"  [dim]hint:[/] {escape(hint)}")
    raise typer.Exit(1)


@contextlib.contextmanager
def _open(config: Path | None) -> Iterator[tuple[BoundedConfig, Any]]:
    from bounded.prompts.store import PromptStore, seed_config
    from bounded.releases.store import ReleaseStore
    from bounded.store.db import Database

    cfg = load(config)[1]
    db = Database.open(cfg.server.store)
    try:
        systems = {n: f.prompt.system for n, f in cfg.features.items() if f.prompt.system}
        seed_config(PromptStore(db), systems)  # bounded.yaml's prompt is version 1
        yield cfg, ReleaseStore(db)
    finally:
        db.close()


def _feature(cfg: BoundedConfig, name: str) -> None:
    if name not in cfg.features:
        _fail(
            f"no feature {name!r}", f"features in the config: {', '.join(cfg.features) or 'none'}"
        )
