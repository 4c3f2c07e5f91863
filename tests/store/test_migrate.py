from __future__ import annotations

import secrets

import asyncpg

from server.store.database import Database
from server.store.migrate import apply_migrations, load_migrations
from tests.servers import with_database


def test_migrations_are_numbered_in_order() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions)
    assert versions[0] == 1
    assert len(set(versions)) == len(versions)


async def test_a_second_run_applies_nothing(db: Database) -> None:
    async with db.connection() as conn:
        assert await apply_migrations(conn) == []
        recorded = await conn.fetch("SELECT version, name FROM schema_migrations")
    assert [(r["version"], r["name"]) for r in recorded] == [
        (m.version, m.name) for m in load_migrations()
    ]


async def test_a_fresh_database_gets_every_migration_once(pg_admin_url: str) -> None:
    name = f"tickmark_fresh_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        fresh = await Database.connect(with_database(pg_admin_url, name), pool_size=2)
        try:
            async with fresh.connection() as conn:
                applied = await apply_migrations(conn)
                again = await apply_migrations(conn)
        finally:
            await fresh.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    assert applied == [m.name for m in load_migrations()]
    assert again == []
