"""Run the gateway with uvicorn (uvloop + httptools) and print how to call it."""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn
from rich.console import Console

from bounded.config.loader import load_config
from bounded.config.schema import BoundedConfig
from bounded.economics.accountant import Accountant
from bounded.economics.ledger import Ledger
from bounded.gateway.app import Gateway
from bounded.gateway.auth import load_or_create_dev_key
from bounded.gateway.protocol import protocol_for
from bounded.store.db import Database
from bounded.store.keys import KeyRepository
from bounded.store.urls import sqlite_path


def open_keys(config: BoundedConfig) -> KeyRepository:
    return KeyRepository(Database.open(config.server.store))


def build_gateway(
    config_path: Path,
    config: BoundedConfig,
    *,
    accountant: Accountant | None = None,
    ledger: Ledger | None = None,
    dev_key: str | None = None,
    migrate: bool = True,
    gateway_class: type[Gateway] = Gateway,
) -> tuple[Gateway, str | None]:
    """The gateway of one process; a worker passes the owner's accountant and ledger."""
    db = Database.open(config.server.store, migrate=migrate)
    if not config.server.dev_key:
        dev_key = None
    elif dev_key is None:
        dev_key = load_or_create_dev_key(state_dir(config))
    gateway = gateway_class(
        config,
        db=db,
        accountant=accountant or _shared_accountant(config),
        ledger=ledger or _shared_ledger(config),
        admin_key=os.environ.get("BOUNDED_ADMIN_KEY") or None,
        dev_key=dev_key,
        config_path=config_path,
    )
    return gateway, dev_key


def serve(
    config_path: Path, host: str | None, port: int | None, workers: int | str | None = None
) -> int:
    """Serve until stopped; with more than one worker, under the supervisor. Exit code."""
    config = load_config(config_path)
    host = host or config.server.host
    port = config.server.port if port is None else port
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("bounded").setLevel(config.server.log_level.upper())
    from bounded.workers.supervisor import resolve_workers, serve_workers

    count = resolve_workers(workers, config)
    if count > 1:
        return serve_workers(config_path, config, host, port, count)
    gateway, dev_key = build_gateway(config_path, config)
    banner(config, host, port, dev_key)
    run_uvicorn(gateway, config, host=host, port=port)
    return 0


def run_uvicorn(
    gateway: Gateway,
    config: BoundedConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    sockets: list[socket.socket] | None = None,
) -> None:
    # Requests allocate many short-lived objects; a larger young generation means far fewer
    # collections (measured: about a fifth less CPU per request and a lower p99 under load).
    gc.set_threshold(10_000, 20, 20)
    settings = uvicorn.Config(
        gateway.app(),
        host=host or config.server.host,
        port=config.server.port if port is None else port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        # httptools with limits on head size and on how long a request may take to arrive.
        http=protocol_for(config.server),
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(settings).run(sockets=sockets)


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


def _shared_accountant(config: BoundedConfig) -> Accountant | None:
    """With ``server.redis`` set, budgets and rate limits live in Redis for all replicas."""
    if not config.server.redis:
        return None
    from bounded.economics.redis_accountant import RedisAccountant

    return RedisAccountant(config.server.redis, config.server.store)


def _shared_ledger(config: BoundedConfig) -> Ledger | None:
    """PostgreSQL takes ledger rows through its own async connection with group commit."""
    if not config.server.store.startswith(("postgresql", "postgres")):
        return None
    from bounded.economics.pg_ledger import PostgresLedger

    return PostgresLedger(config.server.store)
