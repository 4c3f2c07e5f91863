"""Presence shared between processes, kept in PostgreSQL.

Each process writes the state of its own connections in batches (at most
once a second, and a refresh of every row every 20 seconds); readers, such
as the mail worker deciding whether someone is away, query the table. A
process that dies stops refreshing its rows, and they stop counting after
:data:`server.store.presence.STALE_AFTER`.

Writes are batched because presence changes with every subscribe and every
"active" frame; a write per change would cost more than the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from server.clock import Clock
from server.store import presence
from server.store.database import Database
from server.store.presence import PresenceRow


if TYPE_CHECKING:
    from server.live.connection import Connection

__all__ = ["PresenceTracker"]

logger = logging.getLogger(__name__)


class PresenceTracker:
    """Writes this process's connections to the shared presence table.

    Args:
        db: the database.
        clock: the time source.
        node: this process's name in the table.
        on_viewers_changed: called with each transaction whose set of
            viewers changed, after the change is written.
        flush_interval_secs: how often pending changes are written.
        refresh_interval_secs: how often every open connection's row is
            marked as still alive.

    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        node: str,
        on_viewers_changed: Callable[[uuid.UUID], None],
        *,
        flush_interval_secs: float = 1.0,
        refresh_interval_secs: float = 20.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.node = node
        self._on_viewers_changed = on_viewers_changed
        self.flush_interval_secs = flush_interval_secs
        self.refresh_interval_secs = refresh_interval_secs
        # Connections of this process, by id.
        self._connections: dict[uuid.UUID, Connection] = {}
        # Connections whose row must be written, and ones that closed.
        self._dirty: set[uuid.UUID] = set()
        self._gone: set[uuid.UUID] = set()
        # What each connection viewed when its row was last written.
        self._written_viewing: dict[uuid.UUID, tuple[uuid.UUID, ...]] = {}
        self._task: asyncio.Task[None] | None = None

    def track(self, connection: Connection) -> None:
        self._connections[connection.id] = connection
        self._dirty.add(connection.id)

    def changed(self, connection: Connection) -> None:
        if connection.id in self._connections:
            self._dirty.add(connection.id)

    def untrack(self, connection: Connection) -> None:
        if self._connections.pop(connection.id, None) is not None:
            self._dirty.discard(connection.id)
            self._gone.add(connection.id)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="presence"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Leave no rows behind for connections that are about to end.
        self._gone |= set(self._connections)
        self._connections.clear()
        with contextlib.suppress(Exception):
            await self.flush()

    async def flush(self) -> None:
        """Write pending changes now."""
        dirty, self._dirty = self._dirty, set()
        gone, self._gone = self._gone, set()
        rows = []
        changed_views: set[uuid.UUID] = set()
        for connection_id in dirty:
            connection = self._connections.get(connection_id)
            if connection is None:
                continue
            viewing = connection.viewing
            before = self._written_viewing.get(connection_id, ())
            changed_views |= set(viewing) ^ set(before)
            self._written_viewing[connection_id] = viewing
            rows.append(
                PresenceRow(
                    connection_id=connection.id,
                    user_id=connection.user_id,
                    connected_at=connection.connected_at,
                    active_until=connection.active_until,
                    viewing=viewing,
                )
            )
        for connection_id in gone:
            changed_views |= set(self._written_viewing.pop(connection_id, ()))
        try:
            async with self.db.connection() as conn:
                now = self.clock.now()
                await presence.upsert(conn, self.node, rows, now)
                if gone:
                    await presence.delete(conn, list(gone))
        except Exception:
            # Keep the work for the next round rather than lose it.
            self._dirty |= {r.connection_id for r in rows}
            self._gone |= gone
            raise
        for transaction_id in changed_views:
            self._on_viewers_changed(transaction_id)

    async def _refresh(self) -> None:
        ids = list(self._connections)
        async with self.db.connection() as conn:
            now = self.clock.now()
            if ids:
                await presence.refresh(conn, ids, now)
            await presence.forget_stale(conn, now)

    async def _run(self) -> None:
        since_refresh_secs = 0.0
        while True:
            await asyncio.sleep(self.flush_interval_secs)
            since_refresh_secs += self.flush_interval_secs
            try:
                if self._dirty or self._gone:
                    await self.flush()
                if since_refresh_secs >= self.refresh_interval_secs:
                    since_refresh_secs = 0.0
                    await self._refresh()
            except Exception:
                logger.warning("presence write failed; will retry", exc_info=True)
