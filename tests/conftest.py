"""Fixtures: a real PostgreSQL, a real server on a loopback port, a world.

PostgreSQL comes from TICKMARK_TEST_DATABASE_URL when set (a server where
the URL's user may create databases; CI points it at the machine's), and
otherwise from the embedded ``pgserver`` package. Either way the tests get
a database of their own, created here and dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.store.database import Database
from server.store.migrate import apply_migrations
from tests.servers import RedisServer, RunningServer, make_settings, with_database
from tests.world import World, build_world


_TABLES = (
    "sign_in_failures, credentials, read_states, message_recipients, messages, "
    "conversations, transactions, memberships, users, companies"
)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("TICKMARK_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver import get_server  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="tickmark-pg-") as tmp:
        server: Any = get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
async def database_url(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"tickmark_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(pg_admin_url, name)
    try:
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.connect(database_url, pool_size=20)
    async with database.connection() as conn:
        await apply_migrations(conn)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(autouse=True)
async def _clean(request: pytest.FixtureRequest) -> None:
    """Empty every table before each test that uses the database."""
    if "db" not in request.fixturenames:
        return
    database: Database = request.getfixturevalue("db")
    async with database.connection() as conn:
        await conn.execute(f"TRUNCATE {_TABLES} CASCADE")


@pytest.fixture(scope="session")
async def base_url(db: Database) -> AsyncIterator[str]:
    async with RunningServer(make_settings(), db) as url:
        yield url


@pytest.fixture
async def world(db: Database, base_url: str) -> World:
    return await build_world(db, base_url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis of the tests' own, on a free loopback port."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
