"""The PostgreSQL connection pool every store module borrows from."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from server.errors import Unavailable


__all__ = ["Conn", "Database"]

logger = logging.getLogger(__name__)

#: A connection borrowed from the pool; store functions take one. (The
#: class is generic only in asyncpg's type stubs, hence the string.)
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# Errors meaning "PostgreSQL is unreachable right now", as opposed to a bad
# query. They become 503 so clients retry instead of giving up.
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
)


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Reset nothing when a connection goes back to the pool.

    asyncpg's default reset costs a round trip on every release (closing
    cursors, unlistening, resetting settings, releasing advisory locks).
    We leave none of those behind: no session settings, no LISTEN on pooled
    connections, cursors only inside transactions, and the one advisory
    lock (migrations) released where it is taken. An open transaction is
    still rolled back by asyncpg before this is called.
    """
    return None


class Database:
    """A pool of connections to one PostgreSQL database.

    Args:
        pool: an open asyncpg pool.
        acquire_timeout_secs: how long a caller waits for a free connection
            before the request fails with 503 rather than queueing forever.

    """

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout_secs: float) -> None:
        if acquire_timeout_secs <= 0:
            raise ValueError(
                f"acquire_timeout_secs must be positive, got {acquire_timeout_secs}"
            )
        self.pool = pool
        self.acquire_timeout_secs = acquire_timeout_secs

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        pool_size: int = 10,
        command_timeout_secs: float = 10.0,
    ) -> Database:
        """Open a pool to ``dsn``.

        Every statement runs in UTC with ``command_timeout_secs`` as its
        limit: asyncpg's default is no limit at all, which turns one stuck
        query into a stuck request.
        """
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min(2, pool_size),
            max_size=pool_size,
            command_timeout=command_timeout_secs,
            timeout=10,
            server_settings={"application_name": "tickmark", "timezone": "UTC"},
            reset=_keep_session,
        )
        return cls(pool, acquire_timeout_secs=command_timeout_secs)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """Borrow a connection for the length of the block.

        Raises:
            Unavailable: no connection could be had in time, or the one we
                had was lost; the caller's work was not committed.

        """
        try:
            async with self.pool.acquire(timeout=self.acquire_timeout_secs) as conn:
                yield conn
        except _UNREACHABLE as exc:
            logger.warning("database unavailable: %r", exc)
            raise Unavailable(
                "The database is unavailable; try again shortly."
            ) from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """Borrow a connection inside a transaction, committed on success."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        """Tell whether the database answers a trivial query."""
        try:
            async with self.connection() as conn:
                answer = await conn.fetchval("SELECT 1", timeout=2)
                return bool(answer == 1)
        except (Unavailable, *_UNREACHABLE, asyncpg.PostgresError):
            return False
