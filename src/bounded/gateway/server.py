"""Run the gateway with uvicorn (uvloop + httptools) and print how to call it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import uvicorn
from rich.console import Console

from bounded.config.loader import load_config
from bounded.config.schema import BoundedConfig
from bounded.gateway.app import Gateway
from bounded.gateway.auth import load_or_create_dev_key
from bounded.store.keys import MIGRATIONS, KeyRepository
from bounded.store.sqlite import connect, path_from_url


def open_keys(config: BoundedConfig) -> KeyRepository:
    return KeyRepository(connect(config.server.store, MIGRATIONS))


def build_gateway(config_path: Path, config: BoundedConfig) -> tuple[Gateway, str | None]:
    keys = open_keys(config)
    dev_key = None
    if config.server.dev_key:
        dev_key = load_or_create_dev_key(path_from_url(config.server.store).parent)
    gateway = Gateway(
        config,
        keys=keys,
        admin_key=os.environ.get("BOUNDED_ADMIN_KEY") or None,
        dev_key=dev_key,
        config_path=config_path,
    )
    return gateway, dev_key


def serve(config_path: Path, host: str | None, port: int | None) -> None:
    config = load_config(config_path)
    host = host or config.server.host
    port = config.server.port if port is None else port
    gateway, dev_key = build_gateway(config_path, config)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _banner(Console(stderr=True), config, host, port, dev_key)
    uvicorn.run(
        gateway.app(),
        host=host,
        port=port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


def _banner(console: Console, config: BoundedConfig, host: str, port: int, key: str | None) -> None:
    base = f"http://{host}:{port}/v1"
    names = list(config.features) or [n for n, m in config.models.items() if m.kind == "chat"]
    first = names[0] if names else "<model>"
    console.print(f"[bold green]bounded[/] gateway on [bold]{base}[/]")
    console.print(f"features: {', '.join(config.features) or 'none'}; "
                  f"models: {', '.join(config.models) or 'none'}")
    if key:
        console.print(f"development key (loopback only): [bold]{key}[/]")
    shown = key or "$BOUNDED_ADMIN_KEY"
    console.print("\n[bold]curl[/]", highlight=False)
    console.print(
        f"  curl {base}/chat/completions -H 'Authorization: Bearer {shown}' "
        f"-H 'Content-Type: application/json' "
        f"-d '{{\"model\": \"{first}\", \"messages\": [{{\"role\": \"user\", "
        f"\"content\": \"What is the capital of France?\"}}]}}'",
        highlight=False, soft_wrap=True,
    )
    console.print("\n[bold]python (openai SDK)[/]", highlight=False)
    console.print(
        f"  from openai import OpenAI\n"
        f"  client = OpenAI(base_url=\"{base}\", api_key=\"{shown}\")\n"
        f"  reply = client.chat.completions.create(model=\"{first}\", "
        f"messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}])\n"
        f"  print(reply.choices[0].message.content)\n",
        highlight=False, soft_wrap=True,
    )
