"""Who is connected, where, and whether they are paying attention."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from server.store.database import Conn


__all__ = [
    "PresenceRow",
    "delete",
    "forget_stale",
    "refresh",
    "upsert",
    "users_active",
    "viewers",
]

#: A row not refreshed for this long belongs to a process that died.
STALE_AFTER = dt.timedelta(seconds=90)


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceRow:
    connection_id: uuid.UUID
    user_id: uuid.UUID
    connected_at: dt.datetime
    active_until: dt.datetime
    viewing: tuple[uuid.UUID, ...]


async def upsert(
    conn: Conn, node: str, rows: list[PresenceRow], now: dt.datetime
) -> None:
    """Write the state of these connections, in one statement.

    Rows of users who no longer exist are skipped.
    """
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO presence AS p
            (connection_id, user_id, node, connected_at, active_until, seen_at, viewing)
        SELECT r.connection_id, r.user_id, $1, r.connected_at, r.active_until, $2,
            string_to_array(r.viewing, ',')::uuid[]
        FROM unnest(
            $3::uuid[], $4::uuid[], $5::timestamptz[], $6::timestamptz[], $7::text[]
        ) AS r(connection_id, user_id, connected_at, active_until, viewing)
        -- A user deleted while connected is skipped, not allowed to fail
        -- the whole batch: their connection is about to be closed anyway.
        WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id)
        ON CONFLICT (connection_id) DO UPDATE SET
            active_until = excluded.active_until,
            seen_at = excluded.seen_at,
            viewing = excluded.viewing
        """,
        node,
        now,
        [r.connection_id for r in rows],
        [r.user_id for r in rows],
        [r.connected_at for r in rows],
        [r.active_until for r in rows],
        # Arrays of arrays must be rectangular in PostgreSQL, so each
        # connection's list travels as one comma-separated string.
        [",".join(str(v) for v in r.viewing) for r in rows],
    )


async def refresh(
    conn: Conn, connection_ids: list[uuid.UUID], now: dt.datetime
) -> None:
    """Mark these connections as still open."""
    await conn.execute(
        "UPDATE presence SET seen_at = $2 WHERE connection_id = ANY($1::uuid[])",
        connection_ids,
        now,
    )


async def delete(conn: Conn, connection_ids: list[uuid.UUID]) -> None:
    await conn.execute(
        "DELETE FROM presence WHERE connection_id = ANY($1::uuid[])", connection_ids
    )


async def forget_stale(conn: Conn, now: dt.datetime) -> None:
    """Remove rows left by processes that died."""
    await conn.execute("DELETE FROM presence WHERE seen_at < $1", now - STALE_AFTER * 4)


async def users_active(
    conn: Conn, user_ids: list[uuid.UUID], now: dt.datetime
) -> set[uuid.UUID]:
    """Which of these users have a live connection they are paying attention to."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT user_id FROM presence
        WHERE user_id = ANY($1::uuid[]) AND active_until > $2 AND seen_at > $3
        """,
        user_ids,
        now,
        now - STALE_AFTER,
    )
    return {r["user_id"] for r in rows}


async def viewers(
    conn: Conn, transaction_id: uuid.UUID, now: dt.datetime, *, limit: int
) -> tuple[list[tuple[uuid.UUID, str]], int]:
    """Who has the transaction open on a live connection.

    Returns:
        The first ``limit`` of them by name, and how many there are in all.

    """
    rows = await conn.fetch(
        """
        WITH here AS (
            SELECT DISTINCT u.id, u.display_name
            FROM presence p JOIN users u ON u.id = p.user_id
            WHERE p.viewing @> ARRAY[$1::uuid] AND p.seen_at > $2
        )
        SELECT id, display_name, count(*) OVER () AS total
        FROM here ORDER BY display_name, id LIMIT $3
        """,
        transaction_id,
        now - STALE_AFTER,
        limit,
    )
    total = rows[0]["total"] if rows else 0
    return [(r["id"], r["display_name"]) for r in rows], total
