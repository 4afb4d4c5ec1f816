"""Fixtures every test may use: the real Kafka broker, an isolated topic namespace, the real
Redis server (``deploy/local/redis.sh``), the real PostgreSQL (``deploy/local/postgres.sh``)
with a fresh database per test, the real rspamd (``deploy/local/rspamd.sh``) and the unbound
binary the DANE tests start (``deploy/local/unbound.sh install``)."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

KAFKA_ENV = "POSTLINE_TEST_KAFKA"
DEFAULT_KAFKA = "127.0.0.1:29092"
REDIS_ENV = "POSTLINE_TEST_REDIS"
DEFAULT_REDIS = "redis://127.0.0.1:26379/0"
POSTGRES_ENV = "POSTLINE_TEST_POSTGRES"
DEFAULT_POSTGRES = "postgresql://postline@127.0.0.1:25432/postline"
RSPAMD_ENV = "POSTLINE_TEST_RSPAMD"
DEFAULT_RSPAMD = "http://127.0.0.1:21333"


def _reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",", 1)[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The test broker's bootstrap address; under CI a missing broker fails, never skips."""
    bootstrap = os.environ.get(KAFKA_ENV, DEFAULT_KAFKA)
    if not _reachable(bootstrap):
        message = f"no Kafka broker at {bootstrap} (start it with `make kafka-up`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return bootstrap


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis server's URL; under CI a missing server fails, never skips."""
    url = os.environ.get(REDIS_ENV, DEFAULT_REDIS)
    hostport = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    if not _reachable(hostport):
        message = f"no Redis server at {url} (start it with `make redis-up`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The test PostgreSQL's admin DSN (a superuser: tests create databases with it); under CI
    a missing server fails, never skips. Tests use ``postgres_db``, not this database."""
    dsn = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    parts = urlsplit(dsn)
    if not _reachable(f"{parts.hostname or '127.0.0.1'}:{parts.port or 5432}"):
        message = f"no PostgreSQL at {dsn} (start it with `make postgres-up`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return dsn


@pytest.fixture
async def postgres_db(postgres_dsn: str) -> AsyncIterator[str]:
    """The DSN of an empty database of this test's own, dropped after it (testing/postgres.py)."""
    from testing.postgres import fresh_database  # noqa: PLC0415 - store tests only (asyncpg)

    async with fresh_database(postgres_dsn) as dsn:
        yield dsn


def _rspamd_pong(url: str) -> str | None:
    """Why ``GET url/ping`` did not answer pong, or None when it did."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/ping", timeout=5) as response:
            body = response.read(64).decode("ascii", "replace").strip()
    except (OSError, urllib.error.URLError) as exc:
        return str(exc)
    return None if body == "pong" else f"GET /ping answered {body!r}, not pong"


@pytest.fixture(scope="session")
def rspamd_url() -> str:
    """The test rspamd's base URL (its normal worker); under CI a missing rspamd fails."""
    url = os.environ.get(RSPAMD_ENV, DEFAULT_RSPAMD)
    problem = _rspamd_pong(url)
    if problem is not None:
        message = f"no rspamd at {url}: {problem} (start it with `make rspamd-up`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def unbound_binary() -> str:
    """The unbound executable (testing/unbound.py runs it); under CI a missing one fails."""
    from testing.unbound import unbound_binary as find  # noqa: PLC0415 - DANE tests only

    binary = find()
    if binary is None:
        message = "unbound is not installed (run `deploy/local/unbound.sh install`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic-name prefix, so tests sharing one broker never see each other's data."""
    return f"t{uuid.uuid4().hex[:10]}."
