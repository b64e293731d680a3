"""Run the gateway with uvicorn (uvloop + httptools) and print how to call it."""

from __future__ import annotations

import gc
import os
import socket
import sys
from pathlib import Path

import uvicorn

from bounded.config.schema import BoundedConfig
from bounded.economics.accountant import Accountant
from bounded.economics.ledger import Ledger
from bounded.gateway.app import Gateway
from bounded.gateway.auth import load_or_create_dev_key
from bounded.gateway.banner import state_dir
from bounded.gateway.protocol import protocol_for
from bounded.store.db import Database
from bounded.store.keys import KeyRepository


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


def run_uvicorn(
    gateway: Gateway,
    config: BoundedConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    sockets: list[socket.socket] | None = None,
) -> None:
    # Requests allocate many short-lived objects; a larger young generation means far fewer
    # collections (measured: 700 -> 10,000 was about a fifth less CPU per request). The
    # threshold sits well above what requests in flight keep alive, about 145 young objects
    # each with traces on (counting those the trace writer has yet to store). Every object
    # a young collection finds is such a live one, so it costs time and frees nothing: at
    # 50,000, 256 clients on one process (about 64,000 live) ran a 37-58 ms collection
    # every 0.7 s, 4-8% of the CPU; at 200,000, none to five in 20 s.
    gc.set_threshold(200_000, 20, 20)
    # The trace writer and the thread pool run Python beside the event loop; by default a
    # thread may keep the GIL 5 ms while the loop has a request ready. 0.5 ms bounds that
    # wait (measured with traces on: p99 0.80x, requests/s 1.09x; no cost when only the
    # loop is busy, as a switch happens only when another thread waits).
    sys.setswitchinterval(0.0005)
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
