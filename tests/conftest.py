"""Shared fixtures: real servers on loopback ports, real SQLite stores, real configs."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml

from bounded.config.loader import parse_config
from bounded.config.schema import BoundedConfig
from bounded.gateway.app import Gateway
from bounded.store.db import Database
from bounded.store.keys import KeyRepository

# PostgreSQL and Redis fixtures for every module (registered here, once: a plugin named
# by a test module is imported too late for pytest to rewrite its asserts).
pytest_plugins = ("tests.services",)

ADMIN_KEY = "test-admin-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int | None = None, http: Any = "auto") -> Iterator[str]:
    """Run an ASGI app under a real uvicorn on a loopback port; yield its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http=http,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def make_config(data: dict[str, Any], store_url: str) -> BoundedConfig:
    data = {**data, "server": {**data.get("server", {}), "store": store_url}}
    return parse_config(yaml.safe_dump(data), env=os.environ)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bounded.db'}"


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    database = Database.open(store_url)
    yield database
    database.close()


@pytest.fixture
def keys(db: Database) -> KeyRepository:
    return KeyRepository(db)


@pytest.fixture
def gateway_factory(db: Database, store_url: str):  # type: ignore[no-untyped-def]
    """Build a Gateway from a config dict (admin key: ADMIN_KEY) and serve it for real."""

    @contextlib.contextmanager
    def start(data: dict[str, Any], **kw: Any) -> Iterator[tuple[str, Gateway]]:
        gateway = Gateway(make_config(data, store_url), db=db, admin_key=ADMIN_KEY, **kw)
        with serve_in_thread(gateway.app()) as url:
            yield url, gateway

    return start


@pytest.fixture(scope="module")
def standin() -> Iterator[Any]:
    """One fault-injecting stand-in upstream per test module (tests/standins); a module's
    own ``upstream`` fixture scripts it (``standin.forget()`` first) for each test."""
    from tests.standins.faulty_upstream import FaultyUpstream

    with FaultyUpstream().running() as up:
        yield up
