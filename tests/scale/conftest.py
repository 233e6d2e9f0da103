"""Fixtures of the scale-out tests: one Redis and one PostgreSQL for the session (each test
gets its own key prefix and database), and servers of its own for a test that stops them."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from scale_servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server
    server.remove()


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A Redis of this test's own (to stop and restart)."""
    server = RedisServer(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_postgres(tmp_path) -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own (to stop and restart)."""
    server = PostgresServer(tmp_path / "own-pg")
    server.start()
    yield server
    server.remove()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return "t" + secrets.token_hex(4)


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A fresh database of this test's own on the session's PostgreSQL."""
    return postgres_server.create_database("t" + secrets.token_hex(6))
