"""What every ``bounded`` command shares: its consoles, ``--config`` and finding the config.

Without ``--config`` a command looks, in order, at:

1. ``$BOUNDED_CONFIG``;
2. ``./bounded.yaml``;
3. ``./examples/bounded.yaml``, but only in a bounded checkout (a ``pyproject.toml`` naming
   the ``bounded`` project beside it): the config ``make serve`` runs, so the commands the
   README prints work from the clone's root as they are.

A path given by ``--config`` or ``$BOUNDED_CONFIG`` is used as given, even when missing (the
error then says so); when nothing is found the error names every place looked at.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from bounded.config.loader import ConfigError, load_config
from bounded.config.schema import BoundedConfig

# Piped output (CI, `| grep`) gets a wide console so ids and hints are never cut.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)

ENV = "BOUNDED_CONFIG"
LOCAL = Path("bounded.yaml")
EXAMPLE = Path("examples") / "bounded.yaml"

ConfigOption = typer.Option(
    None,
    "--config",
    "-c",
    help=f"path to bounded.yaml (default: ${ENV}, ./{LOCAL}, then {EXAMPLE} in a checkout)",
    show_default=False,
)


def in_checkout(folder: Path) -> bool:
    """Whether ``folder`` is the root of a bounded source checkout."""
    try:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(r'^name\s*=\s*"bounded"\s*$', text, flags=re.MULTILINE) is not None


def find_config(given: Path | None) -> Path:
    """The config a command should read; exits 2 naming every place looked at."""
    if given is not None:
        return given
    from_env = os.environ.get(ENV, "").strip()
    if from_env:
        return Path(from_env)
    if LOCAL.is_file():
        return LOCAL
    checkout = in_checkout(Path.cwd())
    if checkout and EXAMPLE.is_file():
        err.print(f"[dim]config: {EXAMPLE} (this checkout's example; no ./{LOCAL})[/]")
        return EXAMPLE
    err.print("[bold red]config error[/]: no bounded.yaml found. Looked at:")
    err.print("  [red]✗[/] --config: not given")
    err.print(f"  [red]✗[/] ${ENV}: not set")
    err.print(f"  [red]✗[/] ./{LOCAL}: not in {escape(str(Path.cwd()))}")
    where = "missing" if checkout else "not a bounded checkout"
    err.print(f"  [red]✗[/] ./{EXAMPLE}: {where}")
    err.print(
        f"      [dim]hint:[/] pass --config PATH, export {ENV}=PATH, or run from the root"
        f" of the bounded checkout (the config `make serve` runs is {EXAMPLE})"
    )
    raise typer.Exit(2)


def load(given: Path | None) -> tuple[Path, BoundedConfig]:
    """Find and load the config; a broken one exits 2 with every problem listed."""
    path = find_config(given)
    try:
        return path, load_config(path)
    except ConfigError as exc:
        err.print(f"[bold red]config error[/] in {escape(exc.source)}:")
        for problem in exc.problems:
            where = escape(problem.path or "<root>")
            err.print(f"  [red]✗[/] [bold]{where}[/]: {escape(problem.message)}")
            if problem.hint:
                err.print(f"      [dim]hint:[/] {escape(problem.hint)}")
        if given is None and os.environ.get(ENV, "").strip():
            err.print(f"      [dim](the path came from ${ENV})[/]")
        raise typer.Exit(2) from None
