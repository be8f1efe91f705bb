"""Shared fixtures: a real SQLite file per test, a real PostgreSQL and a real Redis server for the session.

`db_engine` is parametrised over both databases, so every test that takes it runs on
SQLite and on PostgreSQL. The PostgreSQL server and the Redis server (`redis_url`: a fresh,
empty database of it per test) are started on 127.0.0.1 once per run, when a test first
needs them, and stopped at the end; if one cannot start the tests fail (they are never skipped).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

import models  # noqa: F401  (registers every table)
from models.clock import FakeClock
from models.db import make_engine
from models.pgserver import PostgresServer
from settings import Settings, load_settings
from tests.redisserver import RedisServer

_db_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """argon2id at production cost takes about a second per check on a busy test machine; the
    suite hashes with argon2-cffi's CHEAPEST profile (same algorithm, same code path)."""
    from argon2 import profiles

    from models.staff import HASH_PROFILE, use_hash_profile

    use_hash_profile(profiles.CHEAPEST)
    yield
    use_hash_profile(HASH_PROFILE)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_schema_url(pg_server: PostgresServer) -> str:
    url = pg_server.create_database("nuanxin_test")
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A Redis database emptied before the test."""
    import redis

    url = redis_server.url(0)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    yield url


def _truncate_all(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'nuanxin.db'}")
    SQLModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_schema_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_schema_url, pool_size=5)
    _truncate_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request: pytest.FixtureRequest) -> Engine:
    """A fresh, empty database of each kind."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Limits in this process unless a test asks for Redis (whatever REDIS_URL the shell has).
    return load_settings(data_dir=tmp_path / "var", id_hash_key="test-id-key", session_secret="test-session",
                         redis_url="")


@pytest.fixture
def clock() -> FakeClock:
    # 2026-03-02 10:00 in Shanghai: a weekday morning, outside quiet hours.
    return FakeClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
def qa_cli() -> typer.Typer:
    """The Q&A's commands (`ask`, `eval-qa`, `knowledge ...`) as a typer app of their own."""
    from bot.qa_commands import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:  # a callback keeps typer from collapsing to a single command
        pass

    return app
