"""Schema migrations: numbered SQL files applied once each, in order.

Each file in ``migrations/`` is named ``NNNN_what.sql`` and runs in its own
transaction together with the row that records it, so a failed migration
leaves nothing half-applied. Running again applies only what is missing.
An advisory lock keeps two processes (two release steps, say) from racing.

We write this small runner instead of using Alembic or yoyo because both
drive PostgreSQL through a second, synchronous driver (SQLAlchemy or
psycopg); plain SQL files over the asyncpg connection we already have are
the whole of what we need.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from importlib import resources

from server.store.database import Conn


__all__ = ["Migration", "apply_migrations", "load_migrations"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")

# Arbitrary constant shared by every Tickmark process; taken with
# pg_advisory_lock so only one process migrates at a time.
_LOCK_KEY = 0x7469636B


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Read the packaged migrations, ordered by version.

    Raises:
        RuntimeError: two files share a version or a file is misnamed.

    """
    found: dict[int, Migration] = {}
    for entry in resources.files("server.store.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.fullmatch(entry.name)
        if match is None:
            raise RuntimeError(f"misnamed migration file: {entry.name}")
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations share version {version}")
        found[version] = Migration(version, entry.name, entry.read_text("utf-8"))
    return [found[v] for v in sorted(found)]


async def apply_migrations(conn: Conn) -> list[str]:
    """Apply the migrations this database lacks.

    Returns:
        The names of the migrations applied now; empty when up to date.

    """
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version FROM schema_migrations")
        done = {row["version"] for row in rows}
        applied = []
        for migration in load_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            logger.info("applied migration %s", migration.name)
            applied.append(migration.name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
