"""What ``bounded serve`` prints on start, and where its development key lives.

Apart from the server so that the worker supervisor can use both without importing the
server module that starts it.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bounded.config.schema import BoundedConfig
from bounded.store.urls import sqlite_path


def banner(config: BoundedConfig, host: str, port: int, key: str | None, workers: int = 1) -> None:
    console = Console(stderr=True)
    base = f"http://{host}:{port}/v1"
    names = list(config.features) or [n for n, m in config.models.items() if m.kind == "chat"]
    first = names[0] if names else "<model>"
    console.print(
        f"[bold green]bounded[/] gateway on [bold]{base}[/]"
        + (f" ({workers} workers)" if workers > 1 else "")
    )
    console.print(
        f"features: {', '.join(config.features) or 'none'}; "
        f"models: {', '.join(config.models) or 'none'}"
    )
    if key:
        console.print(f"development key (loopback only): [bold]{key}[/]")
    shown = key or "$BOUNDED_ADMIN_KEY"
    console.print("\n[bold]curl[/]", highlight=False)
    console.print(
        f"  curl {base}/chat/completions -H 'Authorization: Bearer {shown}' "
        f"-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{first}", "messages": [{{"role": "user", '
        f'"content": "What is the capital of France?"}}]}}\'',
        highlight=False,
        soft_wrap=True,
    )
    console.print("\n[bold]python (openai SDK)[/]", highlight=False)
    console.print(
        f"  from openai import OpenAI\n"
        f'  client = OpenAI(base_url="{base}", api_key="{shown}")\n'
        f'  reply = client.chat.completions.create(model="{first}", '
        f'messages=[{{"role": "user", "content": "Hello"}}])\n'
        f"  print(reply.choices[0].message.content)\n",
        highlight=False,
        soft_wrap=True,
    )


def state_dir(config: BoundedConfig) -> Path:
    """Where the development key lives: beside the SQLite file, or ./.bounded."""
    if config.server.store.startswith("sqlite:///"):
        return sqlite_path(config.server.store).parent
    return Path(".bounded")
