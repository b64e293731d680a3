"""Fixtures: one real MiniLM embedder per session, services over temp folders, and the
index engine each collection uses: the embedded SQLite file by default, or a real
PostgreSQL with pgvector for modules that ask for both (``engine`` parametrized)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bounded.retrieval.embedding import LocalMiniLM
from bounded.retrieval.service import RetrievalService
from tests.conftest import make_config
from tests.services import database_url, unavailable

Build = Callable[..., RetrievalService]
ENGINES = ("sqlite", "pgvector")


@pytest.fixture(scope="session")
def embedder() -> LocalMiniLM:
    # Loaded once: the real model, shared, its counters read as deltas by the tests.
    return LocalMiniLM()


@pytest.fixture(scope="session")
def pgvector_admin() -> Iterator[str]:
    """A PostgreSQL with pgvector: ``BOUNDED_TEST_PGVECTOR`` if set, else a private server
    from the ``pgserver`` wheel (PostgreSQL 16 + pgvector, started in about a second)."""
    configured = os.environ.get("BOUNDED_TEST_PGVECTOR")
    if configured:
        yield configured
        return
    hint = "install the dev extra (pgserver) or point BOUNDED_TEST_PGVECTOR at one"
    root = Path(tempfile.mkdtemp(prefix="bounded-pgv-"))
    try:
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset (CI containers).
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(root, cleanup_mode="stop")
    except Exception as exc:  # ImportError, or pgserver's own untyped errors
        shutil.rmtree(root, ignore_errors=True)
        unavailable("PostgreSQL with pgvector", exc, hint)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pgvector_db(pgvector_admin: str) -> Iterator[str]:
    """A fresh database per test: collection schemas never leak between tests."""
    name = f"bounded_t_{secrets.token_hex(4)}"
    with psycopg.connect(pgvector_admin, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(pgvector_admin, name)
    finally:
        with psycopg.connect(pgvector_admin, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine() -> str:
    """Overridden with ``params=ENGINES`` by modules that run on both engines."""
    return "sqlite"


@pytest.fixture
def build(
    tmp_path: Path, embedder: LocalMiniLM, engine: str, request: pytest.FixtureRequest
) -> Iterator[Build]:
    services: list[RetrievalService] = []
    pg_url = request.getfixturevalue("pgvector_db") if engine == "pgvector" else None

    def make(collections: dict[str, Any], **extra: Any) -> RetrievalService:
        url = f"sqlite:///{tmp_path / 'state' / 'bounded.db'}"
        if pg_url:
            collections = {n: {"store": pg_url, **c} for n, c in collections.items()}
        config = make_config({"collections": collections, **extra}, url)
        service = RetrievalService(config, embedders={"all-minilm-l6-v2": embedder})
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()
