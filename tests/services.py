"""PostgreSQL and Redis for tests: a fresh database and a private key prefix per module.

``tests/conftest.py`` registers it for every module: ask for the ``postgres_url`` and
``redis_url`` fixtures. When a service is unreachable its tests are
skipped with the reason and how to start it, except under ``CI=true``, where they fail:
CI must never pass by skipping the scale-out tests.

Where the services live: ``BOUNDED_TEST_POSTGRES`` (an admin URL that may CREATE
DATABASE; default ``postgresql://postgres@127.0.0.1:5432/postgres``) and
``BOUNDED_TEST_REDIS`` (default ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

POSTGRES_ADMIN = os.environ.get(
    "BOUNDED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("BOUNDED_TEST_REDIS", "redis://127.0.0.1:6379/0")
_START_POSTGRES = (
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
    " or point BOUNDED_TEST_POSTGRES at one"
)
_START_REDIS = (
    'start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ""`'
    " or point BOUNDED_TEST_REDIS at one"
)


def unavailable(service: str, reason: object, hint: str) -> NoReturn:
    """Skip, or under CI=true fail loudly: a service the suite needs is not there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{service} is required under CI=true but unreachable: {reason}", pytrace=False)
    pytest.skip(f"{service} not reachable ({reason}); {hint}")


def database_url(admin_url: str, name: str) -> str:
    """The admin URL with its database name replaced."""
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


@pytest.fixture(scope="module")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database created for this test module and dropped after it."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", str(exc).strip(), _START_POSTGRES)
    module = request.module.__name__.rsplit(".", 1)[-1][:24]
    name = f"bounded_{module}_{secrets.token_hex(4)}".lower()
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(POSTGRES_ADMIN, name)
        finally:
            # FORCE: a server the test killed may leave a connection behind for a moment.
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis URL whose ``prefix`` is private to this module; only its keys are removed."""
    client = redis.Redis.from_url(REDIS, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        unavailable("Redis", exc, _START_REDIS)
    prefix = f"bounded-test-{secrets.token_hex(4)}:"
    try:
        yield f"{REDIS}{'&' if '?' in REDIS else '?'}prefix={prefix}"
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
        client.close()
